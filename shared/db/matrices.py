"""A run's stored pass/fail matrices: the one loader the scorer and the reports share.

For each problem asked for it returns the candidates (the solution samples the run's
profile counts, in sample order), the unique tests with their weights, which tests
each candidate passes under the run's execution profile, and its label.

Whether a problem is labelled at all has one answer,
:func:`shared.db.ground_truth.ground_truth_problems`: the run's ground-truth source has
hidden tests for it (its own, or ``--ground-truth``'s problem with the same task id).
A labelled candidate is ``correct`` when its stored label under the run's
ground-truth profile says so, read the way the run's profile reads it
(:meth:`shared.core.run_profile.RunProfile.label`); an unlabelled problem's candidates
are all ``correct=False`` and must not enter correctness figures.

A few queries for any number of problems, never one per problem.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.analysis_types import ProblemMatrix
from shared.core.run_profile import candidate_samples, run_profile
from shared.core.strategies import Candidate
from shared.db.ground_truth import ground_truth_problems
from shared.db.models import (
    Completion,
    CompletionSolution,
    CompletionTest,
    GroundTruth,
    Problem,
    Run,
    RunCompletion,
)
from shared.db.verdicts import passed_pairs, stored_pairs
from shared.enums import Role


@dataclass(frozen=True)
class StoredMatrix:
    """One problem's matrix as stored for a run.

    ``candidates``: the samples the run's profile counts, in sample order
    (``solution_id=None`` for a sample without code). ``test_weights``: unique test id ->
    test samples yielding it; ``test_samples``: the run's test samples of the problem,
    including those that yielded no test. ``labelled``: whether ground truth labels the
    problem; ``missing_labels``: candidate solutions whose label is not stored yet (0
    once labelling is complete); ``base_labels``: the base-input verdict of each labelled
    solution (``None`` where the benchmark has no base/plus split).
    """

    problem_id: int
    task_id: str
    candidates: tuple[Candidate, ...]
    test_weights: Mapping[int, int]
    test_samples: int
    labelled: bool
    missing_labels: int = 0
    base_labels: Mapping[int, bool | None] = field(default_factory=dict)

    @property
    def solution_ids(self) -> frozenset[int]:
        """The distinct solutions among the candidates."""
        return frozenset(c.solution_id for c in self.candidates if c.solution_id is not None)

    def problem_matrix(self, *, base: bool = False) -> ProblemMatrix:
        """The matrix as the analyses take it; ``base``: labelled by the base inputs'
        verdict instead of the run's label."""
        candidates = self.candidates
        if base:
            candidates = tuple(
                replace(c, correct=bool(self.base_labels.get(c.solution_id)))
                if c.solution_id is not None
                else c
                for c in candidates
            )
        return ProblemMatrix(
            problem_id=self.problem_id,
            task_id=self.task_id,
            candidates=candidates,
            test_weights=dict(self.test_weights),
            test_samples=self.test_samples,
        )


def _run_role(run_id: uuid.UUID, role: Role, problem_ids: Sequence[int]) -> ColumnElement[bool]:
    return (
        (RunCompletion.run_id == run_id)
        & (RunCompletion.role == role.value)
        & RunCompletion.problem_id.in_(problem_ids)
    )


async def _samples(
    session: AsyncSession, run_id: uuid.UUID, problem_ids: Sequence[int]
) -> dict[int, list[int | None]]:
    rows = await session.execute(
        select(RunCompletion.problem_id, CompletionSolution.solution_id)
        .join(Completion, Completion.id == RunCompletion.completion_id)
        .outerjoin(CompletionSolution, CompletionSolution.completion_id == Completion.id)
        .where(_run_role(run_id, Role.SOLUTION, problem_ids))
        .order_by(RunCompletion.problem_id, Completion.sample_index)
    )
    samples: dict[int, list[int | None]] = defaultdict(list)
    for problem_id, solution_id in rows:
        samples[problem_id].append(solution_id)
    return samples


async def _tests(
    session: AsyncSession, run_id: uuid.UUID, problem_ids: Sequence[int]
) -> tuple[dict[int, Counter[int]], Counter[int]]:
    weights: dict[int, Counter[int]] = defaultdict(Counter)
    rows = await session.execute(
        select(RunCompletion.problem_id, CompletionTest.unit_test_id)
        .join(CompletionTest, CompletionTest.completion_id == RunCompletion.completion_id)
        .where(_run_role(run_id, Role.TEST, problem_ids))
    )
    for problem_id, test_id in rows:
        weights[problem_id][test_id] += 1
    samples = Counter(
        await session.scalars(
            select(RunCompletion.problem_id).where(_run_role(run_id, Role.TEST, problem_ids))
        )
    )
    return weights, samples


async def _passes(
    session: AsyncSession, run: Run, solution_ids: set[int], test_ids: set[int]
) -> dict[int, set[int]]:
    passed: dict[int, set[int]] = defaultdict(set)
    for solution_id, test_id in await passed_pairs(
        session, run.exec_profile, solution_ids, test_ids
    ):
        passed[solution_id].add(test_id)
    return passed


async def _labels(
    session: AsyncSession, run: Run, solution_ids: set[int]
) -> tuple[dict[int, bool], dict[int, bool | None]]:
    profile = run_profile(run.config)
    labels: dict[int, bool] = {}
    base: dict[int, bool | None] = {}
    if not solution_ids:
        return labels, base
    rows = await session.execute(
        select(
            GroundTruth.solution_id,
            GroundTruth.passed,
            GroundTruth.base_passed,
            GroundTruth.plus_passed,
        ).where(
            GroundTruth.profile == run.ground_truth_profile,
            GroundTruth.solution_id.in_(solution_ids),
        )
    )
    for solution_id, ok, base_ok, plus_ok in rows:
        labels[solution_id] = profile.label(bool(ok), plus_ok)
        base[solution_id] = base_ok
    return labels, base


async def load_matrices(
    session: AsyncSession, run: Run, problems: Sequence[Problem]
) -> list[StoredMatrix]:
    """The stored matrices of ``problems`` (problems of ``run``), in the order given.

    Verdicts not stored yet simply count as not passed: :func:`missing_verdicts` says
    whether a matrix is complete.
    """
    ids = [p.id for p in problems]
    if not ids:
        return []
    profile = run_profile(run.config)
    samples = {
        pid: candidate_samples(s, profile)
        for pid, s in (await _samples(session, run.id, ids)).items()
    }
    weights, test_samples = await _tests(session, run.id, ids)
    targets = await ground_truth_problems(session, run, problems)
    solution_ids = {sid for s in samples.values() for sid in s if sid is not None}
    test_ids = {tid for w in weights.values() for tid in w}
    passed = await _passes(session, run, solution_ids, test_ids)
    labels, base = await _labels(session, run, solution_ids)
    matrices = []
    for problem in problems:
        tests = frozenset(weights[problem.id])
        labelled = targets[problem.id] is not None
        ids_here = samples.get(problem.id, [])
        matrices.append(
            StoredMatrix(
                problem_id=problem.id,
                task_id=problem.task_id,
                candidates=tuple(
                    Candidate(None)
                    if sid is None
                    else Candidate(
                        sid,
                        frozenset(passed.get(sid, set()) & tests),
                        labelled and labels.get(sid, False),
                    )
                    for sid in ids_here
                ),
                test_weights=dict(weights[problem.id]),
                test_samples=test_samples[problem.id],
                labelled=labelled,
                missing_labels=(
                    len({sid for sid in ids_here if sid is not None and sid not in labels})
                    if labelled
                    else 0
                ),
                base_labels=(
                    {sid: base[sid] for sid in ids_here if sid is not None and sid in base}
                    if labelled
                    else {}
                ),
            )
        )
    return matrices


async def missing_verdicts(session: AsyncSession, run: Run, matrix: StoredMatrix) -> int:
    """How many (candidate solution, unique test) verdicts of ``matrix`` are not stored
    under the run's execution profile yet (0: the matrix is complete)."""
    solutions, tests = matrix.solution_ids, set(matrix.test_weights)
    if not solutions or not tests:
        return 0
    stored = await stored_pairs(session, run.exec_profile, solutions, tests)
    return len(solutions) * len(tests) - len(stored)
