"""The scorer's database access: a problem's pass/fail matrix and the run's results."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.strategies import StrategyResult
from shared.db.matrices import StoredMatrix, load_matrices, missing_verdicts
from shared.db.models import (
    ExecutionBatch,
    Problem,
    Run,
    RunMetric,
    RunProblem,
    Selection,
)
from shared.enums import ProblemState, RunState
from shared.errors import UnknownReferenceError
from shared.runs.lifecycle import advance_run, can_move_run, lock_run


async def batches_pending(session: AsyncSession, run_id: uuid.UUID, problem_id: int) -> bool:
    """Whether any execution batch of the run's problem is still to finish (a cheap
    check, so that the score request after each batch loads the matrix only once)."""
    pending = await session.scalar(
        select(func.count())
        .select_from(ExecutionBatch)
        .where(
            ExecutionBatch.run_id == run_id,
            ExecutionBatch.problem_id == problem_id,
            ExecutionBatch.done_at.is_(None),
        )
    )
    return bool(pending)


async def load_matrix(session: AsyncSession, run: Run, problem_id: int) -> StoredMatrix | None:
    """The complete matrix of a run's problem (:mod:`shared.db.matrices`, the loader the
    reports use too), or ``None`` while verdicts or labels are missing.

    A problem without ground truth (no hidden tests) waits for no labels: its candidates
    are all ``correct=False``, ``labelled`` is False, and no correctness figure may be
    reported for it.
    """
    problem = await session.get(Problem, problem_id)
    if problem is None:
        raise UnknownReferenceError(f"problem {problem_id} not found")
    (matrix,) = await load_matrices(session, run, [problem])
    if matrix.missing_labels or await missing_verdicts(session, run, matrix):
        return None
    return matrix


async def save_selections(
    session: AsyncSession, run_id: uuid.UUID, problem_id: int, results: dict[str, StrategyResult]
) -> None:
    """Upsert one selection per strategy for the problem."""
    stmt = insert(Selection).values(
        [
            {
                "run_id": run_id,
                "problem_id": problem_id,
                "strategy": name,
                "score": result.score,
                "chosen": list(result.chosen),
                "detail": dict(result.detail),
            }
            for name, result in results.items()
        ]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["run_id", "problem_id", "strategy"],
            set_={
                "score": stmt.excluded.score,
                "chosen": stmt.excluded.chosen,
                "detail": stmt.excluded.detail,
            },
        )
    )


async def lock_unfinished_run(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """The run, locked, if it may be finished (it is running: a failed run waits for
    ``coderm resume``, a finished one is final) and every problem is scored."""
    run = await lock_run(session, run_id)
    if run is None or not can_move_run(RunState(run.state), RunState.FINISHED):
        return None
    open_problems = await session.scalar(
        select(func.count())
        .select_from(RunProblem)
        .where(RunProblem.run_id == run_id, RunProblem.state != ProblemState.SCORED.value)
    )
    return run if open_problems == 0 else None


async def load_selections(session: AsyncSession, run_id: uuid.UUID) -> list[Selection]:
    """All selections of a run."""
    return list(await session.scalars(select(Selection).where(Selection.run_id == run_id)))


async def finish_run(
    session: AsyncSession, run: Run, metrics: dict[str, tuple[float, int]]
) -> None:
    """Write the run's metrics and mark it finished (a run locked by
    :func:`lock_unfinished_run`)."""
    if metrics:
        stmt = insert(RunMetric).values(
            [
                {"run_id": run.id, "name": name, "value": value, "problems": problems}
                for name, (value, problems) in metrics.items()
            ]
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "name"],
                set_={"value": stmt.excluded.value, "problems": stmt.excluded.problems},
            )
        )
    advance_run(run, RunState.FINISHED)
