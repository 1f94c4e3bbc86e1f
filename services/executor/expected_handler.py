"""The executor's handler of ``ComputeExpected``: run evalplus problems' canonical
solutions on their inputs in a sandbox container and store the outputs.

Only problems still without expected outputs are run (see
:func:`services.executor.store.load_expected_requests`), so a redelivered message
changes nothing. A problem whose canonical solution fails in the sandbox (e.g. its
outputs do not fit the sandbox's memory) is recorded as ``unavailable`` with the reason:
runs leave it unlabelled, and a later import asks for it again. A sandbox that fails as
a whole raises, and the message is retried from the broker's delay queues.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.client import Sandbox
from services.executor import store
from services.executor.expected_outputs import CanonicalRun, compute_expected
from shared.core.oracle import Expected, Oracle
from shared.messages import ComputeExpected

log = structlog.get_logger(__name__)

NO_RESULT = "no result from the sandbox"

Compute = Callable[[Sequence[CanonicalRun]], Awaitable[Mapping[str, Expected | str]]]
"""Runs canonical solutions; returns each task id's outputs or why there are none."""


class ExpectedStore(Protocol):
    """Where the handler reads the problems to run and writes their outputs."""

    async def pending(self, message: ComputeExpected) -> dict[int, CanonicalRun]:
        """The message's problems still without expected outputs, by problem id."""
        ...

    async def save(self, oracles: Mapping[int, Oracle]) -> None:
        """Store the problems' updated oracles in one transaction."""
        ...


@dataclass(frozen=True)
class DatabaseExpectedStore:
    """:class:`ExpectedStore` on PostgreSQL."""

    sessions: async_sessionmaker[AsyncSession]

    async def pending(self, message: ComputeExpected) -> dict[int, CanonicalRun]:
        """See :func:`services.executor.store.load_expected_requests`."""
        async with self.sessions() as session:
            return await store.load_expected_requests(
                session, message.benchmark_id, message.problem_ids
            )

    async def save(self, oracles: Mapping[int, Oracle]) -> None:
        """See :func:`services.executor.store.save_expected`."""
        async with self.sessions.begin() as session:
            await store.save_expected(session, oracles)


def sandbox_compute(sandbox: Sandbox) -> Compute:
    """:func:`compute_expected` in this executor's sandbox (either backend)."""

    async def compute(problems: Sequence[CanonicalRun]) -> Mapping[str, Expected | str]:
        return await compute_expected(sandbox, problems)

    return compute


def with_outcomes(
    runs: Mapping[int, CanonicalRun], results: Mapping[str, Expected | str]
) -> dict[int, Oracle]:
    """Each problem's oracle with its expected outputs, or with why there are none."""
    oracles: dict[int, Oracle] = {}
    for problem_id, run in runs.items():
        outcome = results.get(run.task_id, NO_RESULT)
        change: dict[str, object]
        if isinstance(outcome, Expected):
            change = {"expected": outcome, "unavailable": None}
        else:
            change = {"expected": None, "unavailable": outcome}
        oracles[problem_id] = run.oracle.model_copy(update=change)
    return oracles


@dataclass
class ExpectedHandler:
    """Computes and stores the expected outputs a ``ComputeExpected`` asks for; at most
    ``slots`` sandboxes run at once (shared with the batch handler)."""

    store: ExpectedStore
    compute: Compute
    slots: asyncio.Semaphore
    instance: str = ""

    async def __call__(self, message: ComputeExpected) -> None:
        """Handle one ``ComputeExpected``."""
        started = time.perf_counter()
        runs = await self.store.pending(message)
        oracles: dict[int, Oracle] = {}
        if runs:
            async with self.slots:
                results = await self.compute(list(runs.values()))
            oracles = with_outcomes(runs, results)
            await self.store.save(oracles)
        log.info(
            "expected.computed",
            benchmark_id=message.benchmark_id,
            executor=self.instance,
            problems=len(message.problem_ids),
            computed=sum(o.expected is not None for o in oracles.values()),
            unavailable=sorted(runs[p].task_id for p, o in oracles.items() if o.expected is None),
            already=len(message.problem_ids) - len(runs),
            seconds=round(time.perf_counter() - started, 3),
        )
