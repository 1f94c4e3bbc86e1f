"""Warm sandboxes: started containers whose runner and zygote already wait for a batch,
so that a latency-bound caller (a reward request) does not pay a container's create,
start and interpreter warm-up.

Every warm container runs one batch and is deleted, as a cold one is: a container
that ran candidate code (hostile or not) is never given a second batch. Its delete
happens after the results are returned (in the background), so a request does not
wait for the engine to remove it either. A container
idle for ``max_idle_s`` is replaced, so none outlives the deadline in its label.
When the pool is empty (a burst took them all, or the engine failed to start one),
a batch runs in a cold container: a warm pool changes latency, never a verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import structlog

from sandbox.client.container import DockerSandbox, Progress, StartedContainer
from sandbox.client.jobs import Job, result_keys
from sandbox.client.results import BatchResult, RunClock, SandboxError

log = structlog.get_logger(__name__)

WARM_RUN_CAP_S = 3600.0
"""A warm container's deadline label is its idle limit plus this: a batch that could
run longer (never a reward request's) runs cold."""

REFILL_BACKOFF_S = 5.0
"""The wait before trying again when the engine failed to start a warm container."""


class WarmSandbox:
    """A :class:`DockerSandbox` with ``size`` started containers in hand.

    ``run_batch`` takes a waiting container when one is ready (and the batch's time-out
    fits :data:`WARM_RUN_CAP_S`), else runs cold; a background task keeps the pool
    full. Call :meth:`start` once and :meth:`close` at the end (it deletes the waiting
    containers).
    """

    def __init__(self, cold: DockerSandbox, size: int, max_idle_s: float = 300.0) -> None:
        self.cold = cold
        self.parallel = cold.parallel
        self.size = size
        self.max_idle_s = max_idle_s
        self._ready: list[StartedContainer] = []
        self._wanted = asyncio.Event()
        self._filled = asyncio.Event()
        self._filler: asyncio.Task[None] | None = None
        self.warm_runs = 0
        self.cold_runs = 0
        self._announced = False

    @property
    def waiting(self) -> int:
        """Started containers waiting for a batch."""
        return len(self._ready)

    def start(self) -> None:
        """Start the background task that fills the pool."""
        if self.size > 0 and self._filler is None:
            self._filler = asyncio.create_task(self._fill(), name="warm-sandbox-filler")
            self._wanted.set()

    async def wait_filled(self, within: float) -> bool:
        """Wait up to ``within`` seconds until ``size`` containers wait (for start-up
        and tests); whether they do."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._filled.wait()
        return len(self._ready) >= self.size

    async def close(self) -> None:
        """Stop filling and delete every waiting container."""
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
            self._filler = None
        ready, self._ready = self._ready, []
        for started in ready:
            await self.cold.discard(started)
        await self.cold.drain()

    async def run_batch(
        self,
        jobs: Sequence[Job],
        progress: Progress | None = None,
        site_packages: bool = True,
    ) -> BatchResult:
        """Run ``jobs`` in a waiting container when one is ready, else in a cold one
        (the :class:`~sandbox.client.backend.Sandbox` contract: SandboxError when the
        sandbox broke)."""
        if not result_keys(jobs):
            return BatchResult({})
        started = self._take() if self.cold.timeout_s(jobs) <= WARM_RUN_CAP_S else None
        if started is None:
            self.cold_runs += 1
            return await self.cold.run_batch(jobs, progress, site_packages)
        self.warm_runs += 1
        return await self.cold.run_started(
            started, jobs, progress, site_packages, RunClock(), defer_delete=True
        )

    async def remove_stale_containers(self) -> int:
        """What the cold sandbox removes (this pool's containers are in its live set)."""
        return await self.cold.remove_stale_containers()

    def _take(self) -> StartedContainer | None:
        """The freshest waiting container, or None; asks the filler for a new one."""
        self._wanted.set()
        self._filled.clear()
        return self._ready.pop() if self._ready else None

    async def _fill(self) -> None:
        """Keep ``size`` containers waiting; replace those idle past ``max_idle_s``."""
        while True:
            await self._retire_idle()
            if len(self._ready) < self.size:
                try:
                    started = await self.cold.start_container(
                        time.time() + self.max_idle_s + WARM_RUN_CAP_S, RunClock()
                    )
                except SandboxError as exc:
                    log.warning("sandbox.warm_start_failed", error=str(exc)[:300])
                    await asyncio.sleep(REFILL_BACKOFF_S)
                    continue
                self._ready.insert(0, started)
                if len(self._ready) == self.size:
                    self._filled.set()
                    if not self._announced:
                        self._announced = True
                        log.info("sandbox.warm_ready", waiting=self.size)
                continue
            self._wanted.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), timeout=self.max_idle_s / 4)

    async def _retire_idle(self) -> None:
        """Delete waiting containers idle longer than ``max_idle_s``."""
        now = time.monotonic()
        stale = [s for s in self._ready if now - s.started_at > self.max_idle_s]
        for started in stale:
            self._filled.clear()
            self._ready.remove(started)
            await self.cold.discard(started)
