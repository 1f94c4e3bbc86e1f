"""A run's stored matrices, loaded for reports: one query per table, not per problem.

Only scored problems are loaded (their matrices are complete), by the loader the
scorer uses (:mod:`shared.db.matrices`). A problem the run's ground truth does not
label (no hidden tests, or canonical outputs that could not be computed) is returned
apart, as *unlabelled*: its candidates carry ``correct=False`` and must not enter
correctness figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.cli.rounds import RoundRow, budget_line, load_rounds
from shared.core.analysis_types import ProblemMatrix
from shared.core.run_profile import RunProfile, run_profile
from shared.db.matrices import load_matrices
from shared.db.models import (
    Benchmark,
    Model,
    Problem,
    Run,
    RunMetric,
    RunProblem,
)
from shared.enums import ProblemState


@dataclass(frozen=True)
class RunInfo:
    """What a report says about the run itself."""

    run_id: str
    name: str
    benchmark: str
    policy: str
    test_model: str
    n_solutions: int
    n_tests: int
    test_style: str
    state: str
    created_at: str
    finished_at: str | None
    problems: int
    problems_scored: int
    exec_profile: str
    ground_truth_profile: str
    profile: str = RunProfile.STRICT.value
    """Whose semantics the run follows (:mod:`shared.core.run_profile`)."""


@dataclass(frozen=True)
class RunData:
    """A run's scored problems as analysis input, with its stored metrics.

    ``problems``: labelled problems, ``correct`` = the label the run's profile reads
    (``ground_truth.passed``; under ``coderm-ref`` the plus inputs' verdict
    ``plus_passed`` where the benchmark has one), their candidates the samples the profile
    counts. ``base_problems``: the same problems with ``correct``
    = the base-input verdict, when the benchmark stores one for every label, else
    ``None``. ``unlabelled``: scored problems without ground truth.
    """

    info: RunInfo
    problems: tuple[ProblemMatrix, ...]
    base_problems: tuple[ProblemMatrix, ...] | None
    unlabelled: tuple[ProblemMatrix, ...]
    stored_metrics: dict[str, tuple[float, int]]
    rounds: tuple[RoundRow, ...] = ()
    """The rounds of a run with a test budget (none otherwise)."""
    budget: str | None = None
    """The test budget in words (:func:`services.cli.rounds.budget_line`)."""


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


async def _info(session: AsyncSession, run: Run) -> RunInfo:
    policy, tests = aliased(Model), aliased(Model)
    row = (
        await session.execute(
            select(Benchmark.name, policy.name, tests.name)
            .select_from(Run)
            .join(Benchmark, Benchmark.id == Run.benchmark_id)
            .join(policy, policy.id == Run.policy_model_id)
            .join(tests, tests.id == Run.test_model_id)
            .where(Run.id == run.id)
        )
    ).one()
    states = Counter(
        await session.scalars(select(RunProblem.state).where(RunProblem.run_id == run.id))
    )
    return RunInfo(
        run_id=str(run.id),
        name=run.name,
        benchmark=row[0],
        policy=row[1],
        test_model=row[2],
        n_solutions=run.n_solutions,
        n_tests=run.n_tests,
        test_style=run.test_style,
        state=run.state,
        created_at=_stamp(run.created_at) or "",
        finished_at=_stamp(run.finished_at),
        problems=sum(states.values()),
        problems_scored=states[ProblemState.SCORED.value],
        exec_profile=run.exec_profile,
        ground_truth_profile=run.ground_truth_profile,
        profile=run_profile(run.config).value,
    )


async def load_run_data(session: AsyncSession, run: Run) -> RunData:
    """Everything a report of ``run`` needs, in a handful of queries (the matrices by
    :mod:`shared.db.matrices`, the loader the scorer uses)."""
    info = await _info(session, run)
    scored = list(
        await session.scalars(
            select(Problem)
            .join(RunProblem, RunProblem.problem_id == Problem.id)
            .where(RunProblem.run_id == run.id, RunProblem.state == ProblemState.SCORED.value)
            .order_by(Problem.position)
        )
    )
    stored = [m for m in await load_matrices(session, run, scored) if m.candidates]
    base_labels = [v for m in stored if m.labelled for v in m.base_labels.values()]
    has_base = bool(base_labels) and all(v is not None for v in base_labels)
    problems = tuple(m.problem_matrix() for m in stored if m.labelled)
    base_problems = tuple(m.problem_matrix(base=True) for m in stored if m.labelled)
    unlabelled = tuple(m.problem_matrix() for m in stored if not m.labelled)
    metrics = await session.execute(
        select(RunMetric.name, RunMetric.value, RunMetric.problems).where(
            RunMetric.run_id == run.id
        )
    )
    rounds = await load_rounds(session, run.id)
    return RunData(
        info=info,
        problems=problems,
        base_problems=base_problems if has_base and problems else None,
        unlabelled=unlabelled,
        stored_metrics={name: (value, count) for name, value, count in metrics},
        rounds=rounds,
        budget=budget_line(run.config, rounds),
    )
