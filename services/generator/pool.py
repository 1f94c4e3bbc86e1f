"""The engines one generator process keeps: one per registered model, made on first use.

Remote engines (``openai``: an HTTP connection pool) are cheap and stay open. Local
engines (``vllm``: a model in this process's memory) are bounded: at most
``local_capacity`` stay loaded, two by default so that a run's policy and unit-test
models are both warm, since a run's generate requests alternate between them. A
request for one more local model closes the least recently used one, once the
requests in its hands have finished. (The alternative, routing each model's requests
to replicas that keep it loaded, needs a queue per model; with few models per run the
swap is the simpler contract, and scaling out means more generator replicas.)

An engine is keyed by the registry fields that shape it, so an entry removed and
registered again with other settings gets a new engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from services.generator.engine import Engine
from shared.db.models import Model

log = structlog.get_logger(__name__)

EngineFactory = Callable[[Model], Awaitable[Engine]]


def engine_key(model: Model) -> str:
    """A digest of what an engine is built from (not sampling, which is per request)."""
    shape = {
        "id": model.id,
        "backend": model.backend,
        "checkpoint": model.checkpoint,
        "endpoint": model.endpoint,
        "served_name": model.served_name,
        "api_key_ref": model.api_key_ref,
        "dtype": model.dtype,
        "max_model_len": model.max_model_len,
        "config": model.config,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


@dataclass
class _Loaded:
    engine: Engine
    local: bool
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()


class EnginePool:
    """Engines by model, made by each backend's factory; see the module docstring."""

    def __init__(
        self,
        factories: Mapping[str, EngineFactory],
        local_backends: frozenset[str],
        local_capacity: int = 2,
    ) -> None:
        self.factories = dict(factories)
        self.local_backends = local_backends
        self.local_capacity = local_capacity
        self._loaded: dict[str, _Loaded] = {}
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def lease(self, model: Model) -> AsyncIterator[Engine]:
        """The model's engine, loaded if needed; it is not closed while leased."""
        key = engine_key(model)
        async with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = await self._load(model, key)
            loaded.users += 1
            loaded.idle.clear()
            loaded.last_used = time.monotonic()
        try:
            yield loaded.engine
        finally:
            loaded.users -= 1
            if loaded.users == 0:
                loaded.idle.set()

    async def _load(self, model: Model, key: str) -> _Loaded:
        local = model.backend in self.local_backends
        if local:
            while sum(item.local for item in self._loaded.values()) >= self.local_capacity:
                victim = min(
                    (k for k, item in self._loaded.items() if item.local),
                    key=lambda k: self._loaded[k].last_used,
                )
                await self._close(victim)
        log.info("engine.loading", model=model.name, backend=model.backend)
        started = time.monotonic()
        engine = await self.factories[model.backend](model)
        log.info("engine.loaded", model=model.name, seconds=round(time.monotonic() - started, 2))
        loaded = _Loaded(engine, local)
        self._loaded[key] = loaded
        return loaded

    async def _close(self, key: str) -> None:
        loaded = self._loaded.pop(key)
        await loaded.idle.wait()
        await loaded.engine.aclose()
        log.info("engine.closed", key=key[:12])

    async def aclose(self) -> None:
        """Close every engine (after the requests in hand)."""
        async with self._lock:
            for key in list(self._loaded):
                await self._close(key)
