"""The executor's handler: run a batch in a sandbox, store results, tell the scorer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.client import BatchResult, Job, Sandbox, SandboxError, run_with_retries
from services.executor import store
from services.executor.code_cache import UnitTestCache
from services.executor.jobs import plan_jobs, result_rows
from shared.broker import Broker
from shared.core.profiles import ExecLimits
from shared.db.verdicts import save_verdicts
from shared.messages import ExecuteBatch, ScoreProblem
from shared.observability import metrics

log = structlog.get_logger(__name__)


@dataclass
class ExecuteHandler:
    """Executes one batch; cached pairs are skipped, so redelivery repeats nothing stored.

    Batches are handled concurrently (up to the broker's prefetch), but at most
    ``slots`` sandboxes run at once: the others load their code or write their results
    meanwhile. ``tests`` keeps each problem's test code across its batches.
    """

    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    sandbox: Sandbox
    slots: asyncio.Semaphore
    tests: UnitTestCache
    instance: str = ""

    async def __call__(self, message: ExecuteBatch) -> None:
        """Handle one ``ExecuteBatch``."""
        started = time.perf_counter()
        async with self.sessions() as session:
            inputs = await store.load_batch(
                session, message.run_id, message.problem_id, message.solution_ids, self.tests
            )
            ground_truth = await store.load_ground_truth(session, inputs.run, inputs.problem)
        limits = ExecLimits.model_validate(inputs.run.config["limits"])
        plan = plan_jobs(
            limits,
            inputs.solutions,
            inputs.tests,
            inputs.done_pairs,
            inputs.labelled,
            ground_truth,
        )
        waited = 0.0
        batch = BatchResult({})
        if plan.jobs:
            queued = time.perf_counter()
            async with self.slots:
                waited = time.perf_counter() - queued
                batch = await self._run(plan.jobs, limits.packages)
        executions, labels = result_rows(batch.results, inputs.run.ground_truth_profile)
        seconds = time.perf_counter() - started - waited
        async with self.sessions.begin() as session:
            await save_verdicts(session, inputs.run.exec_profile, executions)
            await store.save_ground_truth(session, labels)
            await store.mark_batch_done(
                session, message.run_id, message.problem_id, message.batch_no, plan.pairs, seconds
            )
        metrics.pairs_executed(row.outcome.value for row in executions)
        log.info(
            "batch.executed",
            run_id=str(message.run_id),
            problem_id=message.problem_id,
            batch_no=message.batch_no,
            executor=self.instance,
            pairs=plan.pairs,
            labels=plan.labels,
            cached=len(inputs.done_pairs),
            seconds=round(seconds, 3),
            waited=round(waited, 3),
            sandbox=batch.timings.as_dict(),
        )
        await self.broker.publish(
            ScoreProblem(run_id=message.run_id, problem_id=message.problem_id)
        )

    async def _run(self, jobs: list[Job], site_packages: bool) -> BatchResult:
        """Run the jobs (with the image's numpy and pandas importable or not) by the
        sandbox client's one retry policy (``sandbox.client.retry``: what it costs with
        the broker's redeliveries is stated there).

        When no run of the whole batch finished, the ``SandboxError`` propagates (the
        message is retried and eventually dead-lettered); job-level ``sandbox_error``
        results left are stored as such, never as a pass.
        """
        try:
            sandbox = metrics.CountedSandbox(self.sandbox)  # counts container starts, failures
            batch = await run_with_retries(sandbox, jobs, site_packages=site_packages)
        except SandboxError as exc:
            log.warning("sandbox.failed", timings=exc.timings.as_dict(), exc_info=True)
            raise
        for reason in batch.retried:
            log.warning("sandbox.retried", reason=reason)
        return batch
