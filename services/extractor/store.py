"""The extractor's database access: content-addressed writes, idempotent under redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.extractor.extraction import content_hash
from shared.db.models import (
    Completion,
    CompletionSolution,
    CompletionTest,
    ExecutionBatch,
    RunCompletion,
    RunProblem,
    Solution,
    UnitTest,
)
from shared.db.queries import lock_run_problem
from shared.enums import ProblemState, Role


async def upsert_solution(session: AsyncSession, problem_id: int, code: str) -> int:
    """The id of the problem's solution with this code, inserted if new."""
    digest = content_hash(code)
    await session.execute(
        insert(Solution)
        .values(problem_id=problem_id, content_hash=digest, code=code)
        .on_conflict_do_nothing()
    )
    found = await session.scalar(
        select(Solution.id).where(
            Solution.problem_id == problem_id, Solution.content_hash == digest
        )
    )
    assert found is not None
    return found


async def upsert_unit_test(session: AsyncSession, problem_id: int, style: str, code: str) -> int:
    """The id of the problem's unit test with this code and style, inserted if new."""
    digest = content_hash(code)
    await session.execute(
        insert(UnitTest)
        .values(problem_id=problem_id, style=style, content_hash=digest, code=code)
        .on_conflict_do_nothing()
    )
    found = await session.scalar(
        select(UnitTest.id).where(
            UnitTest.problem_id == problem_id,
            UnitTest.style == style,
            UnitTest.content_hash == digest,
        )
    )
    assert found is not None
    return found


async def record_extraction(
    session: AsyncSession, completion_id: int, status: str, detail: str
) -> None:
    """Store why a completion did or did not yield code."""
    await session.execute(
        update(Completion)
        .where(Completion.id == completion_id)
        .values(extraction_status=status, extraction_detail=detail or None)
    )


async def link_solution(session: AsyncSession, completion_id: int, solution_id: int) -> None:
    """Record which solution a completion yielded."""
    await session.execute(
        insert(CompletionSolution)
        .values(completion_id=completion_id, solution_id=solution_id)
        .on_conflict_do_nothing()
    )


async def link_tests(session: AsyncSession, completion_id: int, test_ids: Sequence[int]) -> None:
    """Record which unit tests a completion yielded, in order."""
    if test_ids:
        await session.execute(
            insert(CompletionTest)
            .values(
                [
                    {"completion_id": completion_id, "position": i, "unit_test_id": tid}
                    for i, tid in enumerate(test_ids)
                ]
            )
            .on_conflict_do_nothing()
        )


async def mark_extracted(
    session: AsyncSession, run_id: uuid.UUID, problem_id: int, role: Role
) -> RunProblem:
    """Flag one role of a run's problem as extracted, holding the row lock; return the row."""
    row = await lock_run_problem(session, run_id, problem_id)
    if role is Role.SOLUTION:
        row.solutions_extracted = True
    else:
        row.tests_extracted = True
    return row


async def run_solution_ids(session: AsyncSession, run_id: uuid.UUID, problem_id: int) -> list[int]:
    """The distinct solutions of a run's problem, in order of first appearance."""
    rows = await session.execute(
        select(CompletionSolution.solution_id, Completion.sample_index)
        .join(RunCompletion, RunCompletion.completion_id == CompletionSolution.completion_id)
        .join(Completion, Completion.id == CompletionSolution.completion_id)
        .where(
            RunCompletion.run_id == run_id,
            RunCompletion.problem_id == problem_id,
            RunCompletion.role == Role.SOLUTION.value,
        )
        .order_by(Completion.sample_index)
    )
    return list(dict.fromkeys(sid for sid, _ in rows))


async def run_test_count(session: AsyncSession, run_id: uuid.UUID, problem_id: int) -> int:
    """How many distinct unit tests a run's problem has."""
    rows = await session.scalars(
        select(CompletionTest.unit_test_id)
        .join(RunCompletion, RunCompletion.completion_id == CompletionTest.completion_id)
        .where(
            RunCompletion.run_id == run_id,
            RunCompletion.problem_id == problem_id,
            RunCompletion.role == Role.TEST.value,
        )
        .distinct()
    )
    return len(list(rows))


async def plan_batches(
    session: AsyncSession,
    row: RunProblem,
    solution_ids: list[int],
    tests: int,
    per_batch: int,
) -> list[list[int]]:
    """Split the problem's solutions into execution batches and record them."""
    batches = [solution_ids[i : i + per_batch] for i in range(0, len(solution_ids), per_batch)]
    if batches:
        await session.execute(
            insert(ExecutionBatch)
            .values(
                [
                    {
                        "run_id": row.run_id,
                        "problem_id": row.problem_id,
                        "batch_no": no,
                        "solutions": len(batch),
                        "solution_ids": batch,
                        "pairs": len(batch) * (tests + 1),
                    }
                    for no, batch in enumerate(batches)
                ]
            )
            .on_conflict_do_nothing()
        )
    row.pairs_total = len(solution_ids) * tests
    row.state = ProblemState.EXTRACTED.value
    return batches
