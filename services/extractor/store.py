"""The extractor's database access: content-addressed writes, idempotent under redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.extraction import EXTRACTION_VERSION
from shared.db.code import upsert_code as upsert_code
from shared.db.models import (
    Completion,
    CompletionSolution,
    CompletionTest,
    ExecutionBatch,
    RunCompletion,
    RunProblem,
)
from shared.db.queries import lock_run_problem, run_solution_samples, run_test_ids
from shared.enums import ProblemState, Role
from shared.runs.lifecycle import advance_problem


async def record_extractions(
    session: AsyncSession, outcomes: Sequence[tuple[int, str, str]]
) -> None:
    """Store why each completion did or did not yield code, (id, status, detail), and
    forget what an earlier extraction of them linked (it is linked again below)."""
    if not outcomes:
        return
    ids = [cid for cid, _, _ in outcomes]
    await session.execute(
        delete(CompletionSolution).where(CompletionSolution.completion_id.in_(ids))
    )
    await session.execute(delete(CompletionTest).where(CompletionTest.completion_id.in_(ids)))
    await session.execute(
        update(Completion),
        [
            {
                "id": cid,
                "extraction_status": status,
                "extraction_detail": detail or None,
                "extracted_by": EXTRACTION_VERSION,
            }
            for cid, status, detail in outcomes
        ],
    )


async def link_solutions(session: AsyncSession, links: Sequence[tuple[int, int]]) -> None:
    """Record which solution each completion yielded: (completion id, solution id)."""
    if links:
        await session.execute(
            insert(CompletionSolution).values(
                [{"completion_id": cid, "solution_id": sid} for cid, sid in links]
            )
        )


async def link_tests(session: AsyncSession, links: Sequence[tuple[int, int, int]]) -> None:
    """Record which unit tests each completion yielded: (completion id, position, test id)."""
    if links:
        await session.execute(
            insert(CompletionTest).values(
                [
                    {"completion_id": cid, "position": pos, "unit_test_id": tid}
                    for cid, pos, tid in links
                ]
            )
        )


async def mark_extracted(
    session: AsyncSession, run_id: uuid.UUID, problem_id: int, role: Role, round_no: int = 1
) -> RunProblem | None:
    """Flag one role of a run's problem as extracted, holding the row lock, and once both
    roles are in move the problem to extracted; return the row.

    The move goes through :mod:`shared.runs.lifecycle`, so a problem already scored stays
    scored when an ``ExtractRequest`` of it is delivered again (see :func:`ready_to_plan`).
    A request of another round than the problem's (``round_no``: one of an earlier
    round of a run with a test budget, delivered late) flags nothing: ``None``.
    """
    row = await lock_run_problem(session, run_id, problem_id)
    if round_no != row.round:
        return None
    if role is Role.SOLUTION:
        row.solutions_extracted = True
    else:
        row.tests_extracted = True
    if row.solutions_extracted and row.tests_extracted:
        advance_problem(row, ProblemState.EXTRACTED)
    return row


def ready_to_plan(row: RunProblem) -> bool:
    """Whether a run problem's execution batches are to be planned (again): both roles
    are extracted and it is not scored yet. Planning again an extracted problem is
    idempotent and re-publishes its batches (a crash may have lost them); a scored
    problem's batches are never re-planned."""
    return ProblemState(row.state) is ProblemState.EXTRACTED


async def run_solution_ids(session: AsyncSession, run_id: uuid.UUID, problem_id: int) -> list[int]:
    """The distinct solutions of a run's problem, in order of first appearance."""
    samples = await session.scalars(run_solution_samples(run_id, problem_id))
    return list(dict.fromkeys(sid for sid in samples if sid is not None))


async def run_test_count(
    session: AsyncSession, run_id: uuid.UUID, problem_id: int, before: int | None = None
) -> int:
    """How many distinct unit tests a run's problem has (``before``: only those its test
    samples below that sample index yield)."""
    query = run_test_ids(run_id, problem_id)
    if before is not None:
        query = query.join(Completion, Completion.id == RunCompletion.completion_id).where(
            Completion.sample_index < before
        )
    return len(set(await session.scalars(query)))


async def plan_batches(
    session: AsyncSession,
    row: RunProblem,
    batches: list[list[int]],
    pairs_per_solution: int,
    first_no: int = 0,
) -> None:
    """Record the problem's execution batches (solution ids each), numbered from
    ``first_no``, each with the pairs it is to run (``pairs_per_solution`` a solution)."""
    if batches:
        await session.execute(
            insert(ExecutionBatch)
            .values(
                [
                    {
                        "run_id": row.run_id,
                        "problem_id": row.problem_id,
                        "batch_no": first_no + no,
                        "solution_ids": batch,
                        "pairs": len(batch) * pairs_per_solution,
                    }
                    for no, batch in enumerate(batches)
                ]
            )
            .on_conflict_do_nothing()
        )
