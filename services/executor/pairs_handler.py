"""The executor's handler of reward requests: a bank's tests against a few solutions,
ahead of batch runs, answered on the requester's reply queue."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.client import BatchResult, Sandbox, run_with_retries
from services.executor.jobs import plan_jobs, result_rows
from services.executor.store import CodeItem
from shared.broker import Broker
from shared.core.profiles import ExecLimits
from shared.db.models import Solution, UnitTest
from shared.db.reward_models import TestBank, TestBankTest
from shared.db.verdicts import save_verdicts, stored_pairs
from shared.errors import UnknownReferenceError
from shared.messages import ExecutePairs, PairsDone

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PairsInputs:
    """A reward request's bank, code and the pairs already stored."""

    bank: TestBank
    solutions: list[CodeItem]
    tests: list[CodeItem]
    done: set[tuple[int, int]]


async def load_pairs(session: AsyncSession, message: ExecutePairs) -> PairsInputs:
    """The bank, its tests and the solutions' code, and which pairs have a verdict."""
    bank = await session.get(TestBank, message.bank_id)
    if bank is None:
        raise UnknownReferenceError(f"test bank {message.bank_id} not found")
    tests = [
        CodeItem(tid, code)
        for tid, code in await session.execute(
            select(UnitTest.id, UnitTest.code)
            .join(TestBankTest, TestBankTest.unit_test_id == UnitTest.id)
            .where(TestBankTest.bank_id == bank.id)
            .order_by(UnitTest.id)
        )
    ]
    solutions = [
        CodeItem(sid, code)
        for sid, code in await session.execute(
            select(Solution.id, Solution.code)
            .where(Solution.id.in_(message.solution_ids), Solution.problem_id == bank.problem_id)
            .order_by(Solution.id)
        )
    ]
    if len(solutions) != len(set(message.solution_ids)):
        raise UnknownReferenceError(f"solutions of another problem than bank {bank.id}'s")
    done = await stored_pairs(
        session, bank.exec_profile, [s.id for s in solutions], [t.id for t in tests]
    )
    return PairsInputs(bank, solutions, tests, done)


@dataclass
class PairsHandler:
    """Runs a reward request's missing pairs in one sandbox from the slots reserved for
    reward requests (``slots``), stores the verdicts, then replies; a redelivered
    request runs nothing stored and replies again. What is stored is read once the
    slot is held, so a retried request queued behind its first attempt on the same
    executor runs nothing that attempt stored."""

    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    sandbox: Sandbox
    slots: asyncio.Semaphore
    instance: str = ""

    async def __call__(self, message: ExecutePairs) -> None:
        """Handle one ``ExecutePairs``."""
        started = time.perf_counter()
        async with self.slots:
            async with self.sessions() as session:
                inputs = await load_pairs(session, message)
            limits = ExecLimits.model_validate(inputs.bank.limits)
            plan = plan_jobs(limits, inputs.solutions, inputs.tests, inputs.done, set(), None)
            batch = BatchResult({})
            if plan.jobs:
                batch = await run_with_retries(
                    self.sandbox, plan.jobs, site_packages=limits.packages
                )
            executions, _ = result_rows(batch.results, "")
            if executions:
                async with self.sessions.begin() as session:
                    await save_verdicts(session, inputs.bank.exec_profile, executions)
        log.info(
            "pairs.executed",
            bank_id=inputs.bank.id,
            executor=self.instance,
            pairs=plan.pairs,
            cached=len(inputs.done),
            seconds=round(time.perf_counter() - started, 3),
        )
        await self.broker.reply(
            message.reply_to, PairsDone(correlation_id=message.correlation_id, executed=plan.pairs)
        )
