"""Which benchmark labels a run's solutions, decided when the run is created.

By default a run is labelled by its own benchmark's problems. ``coderm run --ground-truth
OTHER`` labels it by ``OTHER``'s problems with the same task ids instead: the CodeT
HumanEval set (whose prompts are CodeT's HumanEval prompts, without the doctest examples
HumanEval+ carries) is run on ``humaneval`` and scored with ``humaneval+``'s outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.oracle import (
    GroundTruthKind,
    RunGroundTruth,
    outputs_profile,
    unlabelled_profile,
)
from shared.core.profiles import ExecLimits
from shared.db.models import Benchmark, Problem
from shared.errors import RequestError


@dataclass(frozen=True)
class GroundTruthChoice:
    """A run's ground-truth profile and its ``config["ground_truth"]`` entry."""

    profile: str
    config: dict[str, Any]


async def resolve_ground_truth(
    session: AsyncSession, suite: str, problems: Sequence[Problem], limits: ExecLimits
) -> GroundTruthChoice:
    """The ground truth of a run over ``problems`` labelled by benchmark ``suite``.

    Raises :class:`~shared.errors.RequestError` when ``suite`` lacks one of the task
    ids, mixes kinds of ground truth, or has evalplus problems whose expected outputs were
    never computed.
    """
    benchmark_id = await session.scalar(select(Benchmark.id).where(Benchmark.name == suite))
    if benchmark_id is None:
        raise RequestError(f"ground-truth benchmark {suite!r} is not imported")
    rows = await session.execute(
        select(
            Problem.task_id,
            Problem.ground_truth,
            Problem.oracle.op("->>")("expected").is_not(None),
        ).where(
            Problem.benchmark_id == benchmark_id,
            Problem.task_id.in_([p.task_id for p in problems]),
        )
    )
    found = {task_id: (GroundTruthKind(kind), ready) for task_id, kind, ready in rows}
    missing = [p.task_id for p in problems if p.task_id not in found]
    if missing:
        raise RequestError(f"{suite} has no problems {missing[:5]} ({len(missing)} missing)")
    kinds = {kind for kind, _ in found.values()}
    if len(kinds) > 1:
        raise RequestError(f"{suite} mixes ground-truth kinds {sorted(kinds)} in these problems")
    kind = kinds.pop() if kinds else GroundTruthKind.TESTS
    unready = [t for t, (k, ready) in found.items() if k is GroundTruthKind.OUTPUTS and not ready]
    if unready:
        raise RequestError(
            f"{suite}: expected outputs of {unready[:5]} were never computed; "
            f"import the benchmark again (coderm import-benchmark {suite} ...)"
        )
    profile = {
        GroundTruthKind.TESTS: limits.ground_truth_profile(suite),
        GroundTruthKind.OUTPUTS: outputs_profile(suite, limits.packages),
        GroundTruthKind.NONE: unlabelled_profile(suite),
    }[kind]
    source = RunGroundTruth(benchmark=suite, benchmark_id=benchmark_id, kind=kind)
    return GroundTruthChoice(profile, source.model_dump(mode="json"))
