"""A finished run's matrices with the generation order of its test samples, the input
of the round-based allocation simulation (:mod:`shared.core.allocation_rounds`).

The matrices come from the one loader (:func:`shared.db.matrices.load_matrices`); this
adds, per problem, the unique tests each test sample yields in ``sample_index`` order
(an empty entry for a sample that yields none), so that a simulated round reveals test
*samples*, the unit a test model is paid for. Shared by ``coderm
simulate-allocation``, ``coderm report`` and ``bench/allocation_sim.py``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.allocation_rounds import OrderedProblem
from shared.core.analysis_types import ProblemMatrix
from shared.db.matrices import load_matrices
from shared.db.models import Completion, CompletionTest, Problem, Run, RunCompletion, RunProblem
from shared.enums import Role


async def sample_tests(
    session: AsyncSession, run_id: uuid.UUID, problem_ids: Sequence[int]
) -> dict[int, list[tuple[int, ...]]]:
    """Per problem, the unique tests each of the run's test samples yields, the samples
    in ``sample_index`` order and each one's tests in their position order; one query."""
    if not problem_ids:
        return {}
    rows = await session.execute(
        select(
            RunCompletion.problem_id,
            Completion.sample_index,
            CompletionTest.position,
            CompletionTest.unit_test_id,
        )
        .join(Completion, Completion.id == RunCompletion.completion_id)
        .outerjoin(CompletionTest, CompletionTest.completion_id == Completion.id)
        .where(
            RunCompletion.run_id == run_id,
            RunCompletion.role == Role.TEST.value,
            RunCompletion.problem_id.in_(problem_ids),
        )
        .order_by(RunCompletion.problem_id, Completion.sample_index, CompletionTest.position)
    )
    acc: dict[int, dict[int, list[int]]] = defaultdict(dict)
    for problem_id, index, _position, test_id in rows:
        tests = acc[problem_id].setdefault(index, [])
        if test_id is not None:
            tests.append(test_id)
    return {pid: [tuple(v) for _, v in sorted(s.items())] for pid, s in acc.items()}


def ordered_problems(
    matrices: Sequence[ProblemMatrix], orders: Mapping[int, Sequence[tuple[int, ...]]]
) -> list[OrderedProblem]:
    """``matrices`` (labelled ones) joined with their test samples' order
    (:func:`sample_tests`), in the order given."""
    return [OrderedProblem(m, tuple(orders.get(m.problem_id, ()))) for m in matrices]


async def run_problems(session: AsyncSession, run: Run) -> list[Problem]:
    """The run's problems in benchmark order."""
    return list(
        await session.scalars(
            select(Problem)
            .join(RunProblem, RunProblem.problem_id == Problem.id)
            .where(RunProblem.run_id == run.id)
            .order_by(Problem.position)
        )
    )


async def load_ordered_problems(session: AsyncSession, run: Run) -> list[OrderedProblem]:
    """The run's labelled problems with candidates, in benchmark order, each with its
    test samples' generation order. Meant for a finished run (every matrix complete);
    a problem without ground truth or without candidates is left out."""
    problems = await run_problems(session, run)
    matrices = [
        m.problem_matrix()
        for m in await load_matrices(session, run, problems)
        if m.labelled and m.candidates
    ]
    orders = await sample_tests(session, run.id, [m.problem_id for m in matrices])
    return ordered_problems(matrices, orders)
