"""The generator's backends and the engine factories behind them, made at start-up."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.generator.backends import Backend, ReplayBackend
from services.generator.engine import Engine
from services.generator.generating import GeneratingBackend
from services.generator.openai_engine import OpenAIEngine
from services.generator.pool import EngineFactory, EnginePool
from services.generator.vllm_engine import VllmEngine, VllmOptions
from shared.core.model_spec import ModelSpec
from shared.db.models import Model
from shared.enums import BackendName
from shared.errors import UnknownReferenceError
from shared.settings import GeneratorSettings, OpenAISettings


def api_key(settings: OpenAISettings, ref: str | None) -> str | None:
    """The key a model names (or the default key); never stored in the database."""
    if ref is None:
        return settings.api_key.get_secret_value() if settings.api_key else None
    if ref not in settings.api_keys:
        raise UnknownReferenceError(f"API key {ref!r} is not in CODERM_OPENAI__API_KEYS")
    return settings.api_keys[ref].get_secret_value()


def openai_factory(settings: OpenAISettings) -> EngineFactory:
    """Makes an :class:`OpenAIEngine` for a registered ``openai`` model."""

    async def make(model: Model) -> Engine:
        if not model.endpoint or not model.served_name:
            raise UnknownReferenceError(f"model {model.name!r} has no endpoint or served name")
        return OpenAIEngine(
            model.endpoint,
            model.served_name,
            settings,
            api_key=api_key(settings, model.api_key_ref),
            extra_body=ModelSpec.of_row(model).config.extra_body,
        )

    return make


async def make_vllm_engine(model: Model) -> Engine:
    """Loads a registered ``vllm`` model's checkpoint in this process."""
    if not model.checkpoint:
        raise UnknownReferenceError(f"model {model.name!r} has no checkpoint")
    options = VllmOptions(
        checkpoint=model.checkpoint,
        dtype=model.dtype,
        max_model_len=model.max_model_len,
        engine_args=ModelSpec.of_row(model).config.engine_args,
    )
    return await VllmEngine.start(options)


@contextlib.asynccontextmanager
async def open_backends(
    sessions: async_sessionmaker[AsyncSession], settings: GeneratorSettings
) -> AsyncIterator[dict[str, Backend]]:
    """The backends this process serves (``vllm`` only where vLLM is installed); the
    engines they loaded are closed on exit."""
    factories = {BackendName.OPENAI.value: openai_factory(settings.openai)}
    if importlib.util.find_spec("vllm") is not None:
        factories[BackendName.VLLM.value] = make_vllm_engine
    pool = EnginePool(factories, frozenset({BackendName.VLLM.value}), settings.local_engines)
    generating = GeneratingBackend(sessions, pool)
    try:
        yield {BackendName.REPLAY.value: ReplayBackend(sessions)} | dict.fromkeys(
            factories, generating
        )
    finally:
        await pool.aclose()
