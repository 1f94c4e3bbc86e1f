"""Which problem's hidden tests label a run's solutions: one answer for the executor,
the scorer and the reports."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.oracle import GroundTruthKind, run_ground_truth
from shared.db.models import Problem, Run
from shared.errors import UnknownReferenceError


async def ground_truth_problem(session: AsyncSession, run: Run, problem: Problem) -> Problem | None:
    """The problem whose hidden tests label the run's solutions of ``problem`` (see
    :func:`ground_truth_problems`)."""
    return (await ground_truth_problems(session, run, [problem]))[problem.id]


async def ground_truth_problems(
    session: AsyncSession, run: Run, problems: Sequence[Problem]
) -> dict[int, Problem | None]:
    """For each of ``problems`` (by id), the problem whose hidden tests label the run's
    solutions of it: its own, or the run's ground-truth benchmark's problem with the same
    task id. The one answer to "is this problem labelled" for every service and report.

    ``None`` when there is nothing to label with: no hidden tests (kind ``none``), or an
    evalplus problem whose canonical outputs could not be computed in the sandbox. Raises
    ``UnknownReferenceError`` when a ground-truth problem is missing or its expected
    outputs were never computed (a run should not have been created then).
    """
    source = run_ground_truth(run.config)
    targets: dict[int, Problem] = {p.id: p for p in problems}
    foreign = [p for p in problems if source is not None and source.benchmark_id != p.benchmark_id]
    if source is not None and foreign:
        found = {
            row.task_id: row
            for row in await session.scalars(
                select(Problem).where(
                    Problem.benchmark_id == source.benchmark_id,
                    Problem.task_id.in_([p.task_id for p in foreign]),
                )
            )
        }
        for problem in foreign:
            if problem.task_id not in found:
                raise UnknownReferenceError(
                    f"no ground-truth problem {problem.task_id!r} in {source}"
                )
            targets[problem.id] = found[problem.task_id]
    outputs = {t.id for t in targets.values() if t.ground_truth == GroundTruthKind.OUTPUTS.value}
    stored: dict[int, tuple[bool, bool]] = {}
    if outputs:
        rows = await session.execute(
            select(
                Problem.id,
                Problem.oracle.op("->>")("expected").is_not(None),
                Problem.oracle.op("->>")("unavailable").is_not(None),
            ).where(Problem.id.in_(outputs))
        )
        stored = {pid: (bool(expected), bool(unavailable)) for pid, expected, unavailable in rows}
    return {pid: _labelling(target, stored.get(target.id)) for pid, target in targets.items()}


def _labelling(target: Problem, outputs: tuple[bool, bool] | None) -> Problem | None:
    """``target`` if it can label solutions; ``outputs``: (expected outputs stored,
    marked unavailable) of an evalplus problem."""
    kind = GroundTruthKind(target.ground_truth)
    if kind is GroundTruthKind.NONE:
        return None
    if kind is GroundTruthKind.OUTPUTS:
        expected, unavailable = outputs or (False, False)
        if not expected:
            if unavailable:
                return None
            raise UnknownReferenceError(
                f"problem {target.task_id!r} has no expected outputs (coderm import-benchmark)"
            )
    return target
