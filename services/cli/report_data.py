"""A run's stored matrices, loaded for reports: one query per table, not per problem.

Only scored problems are loaded (their matrices are complete). A problem marked
``ground_truth = 'none'`` (a benchmark without hidden tests offline) or whose code
samples lack a ground-truth label under the run's profile is returned apart, as
*unlabelled*: its candidates carry ``correct=False`` and must not enter correctness
figures.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from shared.core.analysis_types import ProblemMatrix
from shared.core.oracle import GroundTruthKind
from shared.core.run_profile import RunProfile, candidate_samples, run_profile
from shared.core.strategies import Candidate
from shared.db.models import (
    Benchmark,
    Completion,
    CompletionSolution,
    CompletionTest,
    Execution,
    GroundTruth,
    Model,
    Problem,
    Run,
    RunCompletion,
    RunMetric,
    RunProblem,
)
from shared.enums import ProblemState, Role


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


def _run_role(run_id: uuid.UUID, role: Role) -> ColumnElement[bool]:
    return (RunCompletion.run_id == run_id) & (RunCompletion.role == role.value)


def _run_solution_ids(run_id: uuid.UUID) -> Select[int]:
    return (
        select(CompletionSolution.solution_id)
        .join(RunCompletion, RunCompletion.completion_id == CompletionSolution.completion_id)
        .where(_run_role(run_id, Role.SOLUTION))
    )


async def _labels(
    session: AsyncSession, run: Run
) -> tuple[dict[int, bool], dict[int, bool | None]]:
    profile = run_profile(run.config)
    rows = await session.execute(
        select(
            GroundTruth.solution_id,
            GroundTruth.passed,
            GroundTruth.base_passed,
            GroundTruth.plus_passed,
        ).where(
            GroundTruth.profile == run.ground_truth_profile,
            GroundTruth.solution_id.in_(_run_solution_ids(run.id)),
        )
    )
    passed: dict[int, bool] = {}
    base_passed: dict[int, bool | None] = {}
    for solution_id, ok, base_ok, plus_ok in rows:
        passed[solution_id] = profile.label(bool(ok), plus_ok)
        base_passed[solution_id] = base_ok
    return passed, base_passed


async def _passes(session: AsyncSession, run: Run) -> dict[int, set[int]]:
    test_ids = (
        select(CompletionTest.unit_test_id)
        .join(RunCompletion, RunCompletion.completion_id == CompletionTest.completion_id)
        .where(_run_role(run.id, Role.TEST))
    )
    rows = await session.execute(
        select(Execution.solution_id, Execution.unit_test_id).where(
            Execution.profile == run.exec_profile,
            Execution.passed.is_(True),
            Execution.solution_id.in_(_run_solution_ids(run.id)),
            Execution.unit_test_id.in_(test_ids),
        )
    )
    passed: dict[int, set[int]] = defaultdict(set)
    for solution_id, test_id in rows:
        passed[solution_id].add(test_id)
    return passed


async def _samples(session: AsyncSession, run_id: uuid.UUID) -> dict[int, list[int | None]]:
    rows = await session.execute(
        select(RunCompletion.problem_id, CompletionSolution.solution_id)
        .join(Completion, Completion.id == RunCompletion.completion_id)
        .outerjoin(CompletionSolution, CompletionSolution.completion_id == Completion.id)
        .where(_run_role(run_id, Role.SOLUTION))
        .order_by(RunCompletion.problem_id, Completion.sample_index)
    )
    samples: dict[int, list[int | None]] = defaultdict(list)
    for problem_id, solution_id in rows:
        samples[problem_id].append(solution_id)
    return samples


async def _tests(
    session: AsyncSession, run_id: uuid.UUID
) -> tuple[dict[int, Counter[int]], Counter[int]]:
    weights: dict[int, Counter[int]] = defaultdict(Counter)
    rows = await session.execute(
        select(RunCompletion.problem_id, CompletionTest.unit_test_id)
        .join(CompletionTest, CompletionTest.completion_id == RunCompletion.completion_id)
        .where(_run_role(run_id, Role.TEST))
    )
    for problem_id, test_id in rows:
        weights[problem_id][test_id] += 1
    samples = Counter(
        await session.scalars(select(RunCompletion.problem_id).where(_run_role(run_id, Role.TEST)))
    )
    return weights, samples


@dataclass(frozen=True)
class _Tables:
    samples: dict[int, list[int | None]]
    weights: dict[int, Counter[int]]
    test_samples: Counter[int]
    passed: dict[int, set[int]]

    def matrix(self, problem_id: int, task_id: str, labels: dict[int, bool]) -> ProblemMatrix:
        tests = set(self.weights[problem_id])
        return ProblemMatrix(
            problem_id=problem_id,
            task_id=task_id,
            candidates=tuple(
                Candidate(None)
                if sid is None
                else Candidate(
                    sid, frozenset(self.passed.get(sid, set()) & tests), labels.get(sid, False)
                )
                for sid in self.samples[problem_id]
            ),
            test_weights=dict(self.weights[problem_id]),
            test_samples=self.test_samples[problem_id],
        )


async def load_run_data(session: AsyncSession, run: Run) -> RunData:
    """Everything a report of ``run`` needs, in a handful of queries."""
    info = await _info(session, run)
    scored = list(
        (
            await session.execute(
                select(Problem.id, Problem.task_id, Problem.ground_truth)
                .join(RunProblem, RunProblem.problem_id == Problem.id)
                .where(
                    RunProblem.run_id == run.id,
                    RunProblem.state == ProblemState.SCORED.value,
                )
                .order_by(Problem.position)
            )
        ).tuples()
    )
    weights, test_samples = await _tests(session, run.id)
    profile = run_profile(run.config)
    samples = {
        problem_id: candidate_samples(ids, profile)
        for problem_id, ids in (await _samples(session, run.id)).items()
    }
    passed = await _passes(session, run)
    tables = _Tables(samples, weights, test_samples, passed)
    labels, base_labels = await _labels(session, run)
    has_base = bool(base_labels) and all(v is not None for v in base_labels.values())
    base_bool = {sid: bool(v) for sid, v in base_labels.items()}
    problems: list[ProblemMatrix] = []
    base_problems: list[ProblemMatrix] = []
    unlabelled: list[ProblemMatrix] = []
    for problem_id, task_id, kind in scored:
        ids = tables.samples.get(problem_id)
        if not ids:
            continue
        if kind == GroundTruthKind.NONE or not all(sid in labels for sid in ids if sid is not None):
            unlabelled.append(tables.matrix(problem_id, task_id, {}))
            continue
        problems.append(tables.matrix(problem_id, task_id, labels))
        if has_base:
            base_problems.append(tables.matrix(problem_id, task_id, base_bool))
    metrics = await session.execute(
        select(RunMetric.name, RunMetric.value, RunMetric.problems).where(
            RunMetric.run_id == run.id
        )
    )
    return RunData(
        info=info,
        problems=tuple(problems),
        base_problems=tuple(base_problems) if has_base and problems else None,
        unlabelled=tuple(unlabelled),
        stored_metrics={name: (value, count) for name, value, count in metrics},
    )
