"""The gateway's database access: tokens, test banks, solutions, verdicts and the
stored requests."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.schemas import INLINE_BENCHMARK, InlineProblem, ProblemRef
from shared.core.extraction import content_hash
from shared.core.oracle import GroundTruthKind
from shared.core.tokens import token_hash
from shared.db.code import upsert_code
from shared.db.models import Benchmark, Problem, Solution
from shared.db.reward_models import ApiToken, RewardItem, RewardRequest, TestBank, TestBankTest
from shared.db.verdicts import passed_pairs, stored_pairs


async def token_id(session: AsyncSession, token: str) -> int | None:
    """The id of a live (not revoked) token, noting its use; ``None`` if unknown."""
    found: int | None = await session.scalar(
        update(ApiToken)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
        .values(last_used_at=datetime.now(UTC))
        .returning(ApiToken.id)
    )
    return found


@dataclass(frozen=True)
class Bank:
    """A problem's test bank as scoring needs it."""

    id: int
    problem_id: int
    exec_profile: str
    weights: dict[int, int]

    @property
    def tests(self) -> list[int]:
        """The bank's unit-test ids, ascending."""
        return sorted(self.weights)


async def banks_of(session: AsyncSession, refs: Iterable[ProblemRef]) -> dict[ProblemRef, Bank]:
    """The newest test bank of each problem named (problems without one are absent)."""
    wanted = set(refs)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Benchmark.name, Problem.task_id, func.max(TestBank.id))
        .join(Problem, Problem.benchmark_id == Benchmark.id)
        .join(TestBank, TestBank.problem_id == Problem.id)
        .where(Benchmark.name.in_({r.benchmark for r in wanted}))
        .where(Problem.task_id.in_({r.task_id for r in wanted}))
        .group_by(Benchmark.name, Problem.task_id)
    )
    newest = {
        ProblemRef(benchmark=b, task_id=t): bank_id
        for b, t, bank_id in rows
        if ProblemRef(benchmark=b, task_id=t) in wanted
    }
    if not newest:
        return {}
    banks = {
        b.id: b
        for b in await session.scalars(select(TestBank).where(TestBank.id.in_(newest.values())))
    }
    weights: dict[int, dict[int, int]] = defaultdict(dict)
    for bank_id, test_id, weight in await session.execute(
        select(TestBankTest.bank_id, TestBankTest.unit_test_id, TestBankTest.weight).where(
            TestBankTest.bank_id.in_(newest.values())
        )
    ):
        weights[bank_id][test_id] = weight
    return {
        ref: Bank(bank_id, banks[bank_id].problem_id, banks[bank_id].exec_profile, weights[bank_id])
        for ref, bank_id in newest.items()
    }


async def store_inline(session: AsyncSession, problems: Iterable[InlineProblem]) -> None:
    """Store problems given inline (each once, under its content-derived task id) in
    the benchmark :data:`INLINE_BENCHMARK`, which is made on first use."""
    todo = {p.ref().task_id: p for p in problems}
    if not todo:
        return
    await session.execute(
        insert(Benchmark)
        .values(name=INLINE_BENCHMARK, source="problems given to the reward gateway")
        .on_conflict_do_nothing()
    )
    benchmark_id = await session.scalar(
        select(Benchmark.id).where(Benchmark.name == INLINE_BENCHMARK)
    )
    position = await session.scalar(
        select(func.coalesce(func.max(Problem.position), -1)).where(
            Problem.benchmark_id == benchmark_id
        )
    )
    await session.execute(
        insert(Problem)
        .values(
            [
                {
                    "benchmark_id": benchmark_id,
                    "task_id": task_id,
                    "position": (position or 0) + 1 + n,
                    "prompt": problem.prompt,
                    "test_prompt": problem.test_prompt,
                    "entry_point": problem.entry_point,
                    "canonical_solution": "",
                    "test_code": "",
                    "ground_truth": GroundTruthKind.NONE.value,
                }
                for n, (task_id, problem) in enumerate(sorted(todo.items()))
            ]
        )
        .on_conflict_do_nothing()
    )


async def solution_ids(session: AsyncSession, problem_id: int, codes: Sequence[str]) -> list[int]:
    """The content-addressed solution id of each code (stored if new), in order."""
    ids = await upsert_code(session, Solution, {"problem_id": problem_id}, codes)
    return [ids[content_hash(code)] for code in codes]


async def missing(session: AsyncSession, bank: Bank, solutions: Sequence[int]) -> list[int]:
    """The solutions without a verdict on some test of the bank."""
    if not solutions or not bank.weights:
        return []
    stored = await stored_pairs(session, bank.exec_profile, set(solutions), bank.weights)
    counts = Counter(sid for sid, _ in stored)
    done = {sid for sid, count in counts.items() if count == len(bank.weights)}
    return sorted(set(solutions) - done)


async def passed_sets(
    session: AsyncSession, bank: Bank, solutions: Sequence[int]
) -> dict[int, frozenset[int]]:
    """Each solution's passed tests of the bank (a verdict not stored counts as failed)."""
    acc: dict[int, set[int]] = {sid: set() for sid in solutions}
    if solutions and bank.weights:
        for sid, tid in await passed_pairs(
            session, bank.exec_profile, set(solutions), bank.weights
        ):
            acc[sid].add(tid)
    return {sid: frozenset(tests) for sid, tests in acc.items()}


async def stored_answer(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """The answer of a finished request with this key, if any."""
    answer: dict[str, Any] | None = await session.scalar(
        select(RewardRequest.response).where(RewardRequest.request_key == key)
    )
    return answer


async def open_request(
    session: AsyncSession, key: str, token: int, kind: str, items: int, meta: dict[str, Any]
) -> None:
    """Record a request as received (a retry of an unfinished one keeps its row)."""
    await session.execute(
        insert(RewardRequest)
        .values(request_key=key, token_id=token, kind=kind, items=items, meta=meta)
        .on_conflict_do_nothing()
    )


async def finish_request(
    session: AsyncSession,
    key: str,
    answer: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    seconds: float,
) -> None:
    """Store a request's items and answer (a retry that raced it keeps the first)."""
    if rows:
        await session.execute(
            insert(RewardItem)
            .values([{"request_key": key, **row} for row in rows])
            .on_conflict_do_nothing()
        )
    await session.execute(
        update(RewardRequest)
        .where(RewardRequest.request_key == key, RewardRequest.response.is_(None))
        .values(response=answer, seconds=seconds, finished_at=datetime.now(UTC))
    )
