"""The scorer's database access: a problem's pass/fail matrix and the run's results."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.run_profile import candidate_samples, run_profile
from shared.core.strategies import Candidate, StrategyResult
from shared.db.ground_truth import ground_truth_problem
from shared.db.models import (
    Execution,
    ExecutionBatch,
    GroundTruth,
    Problem,
    Run,
    RunMetric,
    RunProblem,
    Selection,
)
from shared.db.queries import run_solution_samples, run_test_ids
from shared.enums import ProblemState, RunState
from shared.errors import UnknownReferenceError
from shared.lifecycle import advance_run, can_move_run, lock_run


@dataclass(frozen=True)
class Matrix:
    """A problem's candidates in sample order and its test weights, when complete."""

    candidates: list[Candidate]
    test_weights: dict[int, int]
    labelled: bool = True


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


async def load_matrix(session: AsyncSession, run: Run, problem_id: int) -> Matrix | None:
    """The complete matrix of a run's problem, or ``None`` while results are missing.

    A problem without ground truth (no hidden tests) waits for no labels: its candidates
    are all ``correct=False``, ``labelled`` is False, and no correctness figure may be
    reported for it. The run's profile (:mod:`shared.core.run_profile`) decides which samples
    are candidates and which stored verdict labels them.
    """
    problem = await session.get(Problem, problem_id)
    if problem is None:
        raise UnknownReferenceError(f"problem {problem_id} not found")
    labelled = await ground_truth_problem(session, run, problem) is not None
    profile = run_profile(run.config)
    samples = candidate_samples(
        list(await session.scalars(run_solution_samples(run.id, problem_id))), profile
    )
    weights = Counter(await session.scalars(run_test_ids(run.id, problem_id)))
    solution_ids = {sid for sid in samples if sid is not None}
    passed: dict[int, set[int]] = {sid: set() for sid in solution_ids}
    executed = 0
    if weights and solution_ids:
        rows = await session.execute(
            select(Execution.solution_id, Execution.unit_test_id, Execution.passed).where(
                Execution.solution_id.in_(solution_ids),
                Execution.unit_test_id.in_(weights.keys()),
                Execution.profile == run.exec_profile,
            )
        )
        for sid, tid, ok in rows:
            executed += 1
            if ok:
                passed[sid].add(tid)
    label_rows = await session.execute(
        select(GroundTruth.solution_id, GroundTruth.passed, GroundTruth.plus_passed).where(
            GroundTruth.solution_id.in_(solution_ids),
            GroundTruth.profile == run.ground_truth_profile,
        )
    )
    labels = {sid: profile.label(ok, plus_ok) for sid, ok, plus_ok in label_rows}
    wanted = len(solution_ids) if labelled else 0
    if executed < len(solution_ids) * len(weights) or len(labels) < wanted:
        return None
    candidates = [
        Candidate(
            solution_id=sid,
            passed=frozenset(passed[sid]) if sid is not None else frozenset(),
            correct=bool(labels.get(sid, False)) if sid is not None else False,
        )
        for sid in samples
    ]
    return Matrix(candidates, dict(weights), labelled)


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
