"""Test banks made on first use: a problem without a bank gets one from a run of the
configured test model through the services (generator, extractor, executor, scorer),
then :func:`shared.db.banks.banks_from_run` over that run.

Each step is idempotent and safe with several gateway replicas: a problem's bank run
is created once (under a transaction-scoped advisory lock on the problem), and a
request that finds one running waits for it; a finished run's banks are made by
whichever request sees it first. A bank run whose start was lost (a gateway killed
between its commit and its publish) is driven again once, ``bank_stall_s`` after it
was created, by :func:`shared.runs.resume.resume_messages`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.gateway.schemas import ProblemRef
from shared.broker import Broker
from shared.db.banks import banks_from_run
from shared.db.models import Benchmark, Model, Problem, Run, RunProblem
from shared.enums import RunState
from shared.errors import RequestError
from shared.messages import Message
from shared.runs.creation import RunRequest, create_run, run_start_requests
from shared.runs.resume import resume_messages
from shared.settings import GatewaySettings

log = structlog.get_logger(__name__)

BANK_PURPOSE = "bank"
"""``runs.config->>'purpose'`` of a run made to fill test banks."""

LOCK_SPACE = 0x62616E6B
"""The first key of the advisory lock taken on a problem while its bank run is found
or created (the second is the problem id)."""

POLL_S = 0.25


class _Failed(Exception):
    """A problem's bank run failed lately (raised once the failure is noted)."""


class BankPending(Exception):
    """A bank run is still going at the request's deadline: retry after a while."""


@dataclass
class BankMaker:
    """Makes the missing test banks of a request's problems (see the module)."""

    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    settings: GatewaySettings

    async def make(self, refs: Collection[ProblemRef]) -> None:
        """Give every problem of ``refs`` a bank, waiting up to ``bank_wait_s``.

        Raises RequestError when banks are not made on first use here, a problem is
        unknown, or its bank run failed or gave it no test; BankPending at the deadline.
        """
        if self.settings.bank_test_model is None:
            names = ", ".join(sorted(str(r) for r in refs)[:5])
            raise RequestError(
                f"no test bank for {names} (coderm bank create --from-run RUN, or set "
                "CODERM_BANK_TEST_MODEL to make banks on first use)"
            )
        pending = set((await self._bank_runs(refs)).values())
        deadline = time.monotonic() + self.settings.bank_wait_s
        while True:
            pending = await self._finish(pending)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise BankPending(f"test banks are being made by runs {sorted(pending)}")
            await asyncio.sleep(POLL_S)

    async def _bank_runs(self, refs: Collection[ProblemRef]) -> dict[ProblemRef, uuid.UUID]:
        """Each problem's bank run: the newest one not failed, or one started now."""
        by_benchmark: dict[str, list[ProblemRef]] = defaultdict(list)
        for ref in refs:
            by_benchmark[ref.benchmark].append(ref)
        out: dict[ProblemRef, uuid.UUID] = {}
        for benchmark, wanted in sorted(by_benchmark.items()):
            messages: list[Message] = []
            failed = ""
            async with self.sessions.begin() as session:
                problems = await _problems(session, benchmark, wanted)
                for problem_id in sorted(problems.values()):
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(:space, :problem)"),
                        {"space": LOCK_SPACE, "problem": problem_id},
                    )
                try:
                    found = await self._existing(session, set(problems.values()))
                except _Failed as exc:  # committed with the failure noted, then raised
                    failed, found = str(exc), {}
                missing = sorted(t for t, pid in problems.items() if pid not in found)
                if missing and not failed:
                    run, problem_ids = await create_run(session, self._request(benchmark, missing))
                    run.config = {**run.config, "purpose": BANK_PURPOSE}
                    messages += run_start_requests(run, problem_ids)
                    found.update((problems[t], run.id) for t in missing)
                    log.info("bank.run_started", run_id=str(run.id), problems=len(missing))
                messages += await self._stalled(session, set(found.values()))
            if failed:
                raise RequestError(failed)
            if messages:
                await self.broker.publish_many(messages)
            for task_id, problem_id in problems.items():
                out[ProblemRef(benchmark=benchmark, task_id=task_id)] = found[problem_id]
        return out

    def _request(self, benchmark: str, task_ids: list[str]) -> RunRequest:
        test_model = self.settings.bank_test_model
        assert test_model is not None
        return RunRequest(
            benchmark=benchmark,
            policy=self.settings.bank_policy or test_model,
            test_model=test_model,
            name=f"test banks: {benchmark}",
            task_ids=tuple(task_ids),
            n_solutions=1,
            n_tests=self.settings.bank_tests,
        )

    async def _existing(self, session: AsyncSession, problem_ids: set[int]) -> dict[int, uuid.UUID]:
        """The newest bank run of each problem that has not failed. A failed one is
        replaced, but not within ``bank_stall_s`` of its failure being seen: until
        then its error is the answer."""
        rows = await session.execute(
            select(RunProblem.problem_id, Run)
            .join(Run, Run.id == RunProblem.run_id)
            .join(Model, Model.id == Run.test_model_id)
            .where(
                RunProblem.problem_id.in_(problem_ids),
                Run.config["purpose"].astext == BANK_PURPOSE,
                Model.name == self.settings.bank_test_model,
            )
            .order_by(Run.created_at)
        )
        found: dict[int, uuid.UUID] = {}
        failures: dict[int, Run] = {}
        for problem_id, run in rows:
            if run.state == RunState.FAILED.value:
                failures[problem_id] = run
            else:
                found[problem_id] = run.id
                failures.pop(problem_id, None)
        for run in failures.values():
            if _failure_age(run) < self.settings.bank_stall_s:
                raise _Failed(f"the test-bank run {run.id} failed: {run.error}")
        return found

    async def _stalled(self, session: AsyncSession, run_ids: set[uuid.UUID]) -> list[Message]:
        """Messages that drive again, once, the bank runs still running ``bank_stall_s``
        after they were created."""
        since = datetime.now(UTC) - timedelta(seconds=self.settings.bank_stall_s)
        runs = await session.scalars(
            select(Run).where(
                Run.id.in_(run_ids),
                Run.state == RunState.RUNNING.value,
                Run.created_at < since,
                ~Run.config.has_key("redriven_at"),
            )
        )
        messages: list[Message] = []
        for run in runs:
            messages += await resume_messages(session, run)
            run.config = {**run.config, "redriven_at": datetime.now(UTC).isoformat()}
            log.warning("bank.run_redriven", run_id=str(run.id))
        return messages

    async def _finish(self, run_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        """Make the banks of the finished runs; the runs still going. RequestError for
        a failed one."""
        pending: set[uuid.UUID] = set()
        failed = ""
        async with self.sessions.begin() as session:
            for run in await session.scalars(select(Run).where(Run.id.in_(run_ids))):
                if run.state == RunState.FINISHED.value:
                    await banks_from_run(session, run)
                elif run.state == RunState.FAILED.value:
                    _failure_age(run)
                    failed = failed or f"the test-bank run {run.id} failed: {run.error}"
                else:
                    pending.add(run.id)
        if failed:
            raise RequestError(failed)
        return pending


def _failure_age(run: Run) -> float:
    """Seconds since a failed bank run's failure was first seen (noting it in the run's
    config the first time: a failed run has no timestamp of its own)."""
    now = datetime.now(UTC)
    seen = run.config.get("failure_seen_at")
    if seen is None:
        run.config = {**run.config, "failure_seen_at": now.isoformat()}
        return 0.0
    return (now - datetime.fromisoformat(str(seen))).total_seconds()


async def _problems(
    session: AsyncSession, benchmark: str, refs: Collection[ProblemRef]
) -> dict[str, int]:
    """Task id -> problem id of ``refs`` in ``benchmark``; RequestError for unknown ones."""
    rows = await session.execute(
        select(Problem.task_id, Problem.id)
        .join(Benchmark, Benchmark.id == Problem.benchmark_id)
        .where(Benchmark.name == benchmark, Problem.task_id.in_({r.task_id for r in refs}))
    )
    found: dict[str, int] = {t: pid for t, pid in rows}
    unknown = sorted(r.task_id for r in refs if r.task_id not in found)
    if unknown:
        raise RequestError(f"{benchmark} has no problem {', '.join(unknown[:5])}")
    return found
