"""Which problem's hidden tests label a run's solutions (executor and scorer agree on it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.oracle import GroundTruthKind, run_ground_truth
from shared.db.models import Problem, Run
from shared.errors import UnknownReferenceError


async def ground_truth_problem(session: AsyncSession, run: Run, problem: Problem) -> Problem | None:
    """The problem whose hidden tests label the run's solutions of ``problem``: its own, or
    the run's ground-truth benchmark's problem with the same task id.

    ``None`` when there is nothing to label with: no hidden tests (kind ``none``), or an
    evalplus problem whose canonical outputs could not be computed in the sandbox. Raises
    ``UnknownReferenceError`` when the ground-truth problem is missing or its expected
    outputs were never computed (a run should not have been created then).
    """
    source = run_ground_truth(run.config)
    target: Problem | None = problem
    if source is not None and source.benchmark_id != problem.benchmark_id:
        target = await session.scalar(
            select(Problem).where(
                Problem.benchmark_id == source.benchmark_id, Problem.task_id == problem.task_id
            )
        )
    if target is None:
        raise UnknownReferenceError(f"no ground-truth problem {problem.task_id!r} in {source}")
    kind = GroundTruthKind(target.ground_truth)
    if kind is GroundTruthKind.NONE:
        return None
    if kind is GroundTruthKind.OUTPUTS:
        expected, unavailable = (
            await session.execute(
                select(
                    Problem.oracle.op("->>")("expected").is_not(None),
                    Problem.oracle.op("->>")("unavailable").is_not(None),
                ).where(Problem.id == target.id)
            )
        ).one()
        if not expected:
            if unavailable:
                return None
            raise UnknownReferenceError(
                f"problem {target.task_id!r} has no expected outputs (coderm import-benchmark)"
            )
    return target
