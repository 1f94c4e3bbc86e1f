"""The messages that drive a run, built in one place (pure: no I/O).

A run starts with one generate request per problem and role; an extracted problem
continues with one execute request per planned batch, or a score request when it has
no batch (nothing to run: no solution or no test).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from shared.enums import Role
from shared.messages import ExecuteBatch, GenerateRequest, Message, ScoreProblem


def generate_requests(
    run_id: uuid.UUID, problem_ids: Iterable[int], n_solutions: int, n_tests: int
) -> list[Message]:
    """A generate request per problem for ``n_solutions`` solutions and ``n_tests`` tests."""
    return [
        GenerateRequest(run_id=run_id, problem_id=problem_id, role=role, count=count)
        for problem_id in problem_ids
        for role, count in ((Role.SOLUTION, n_solutions), (Role.TEST, n_tests))
    ]


def batch_requests(
    run_id: uuid.UUID, problem_id: int, batches: Sequence[tuple[int, Sequence[int]]]
) -> list[Message]:
    """An execute request per ``(batch_no, solution_ids)`` batch of an extracted problem,
    or the score request that closes it when it has none."""
    if not batches:
        return [ScoreProblem(run_id=run_id, problem_id=problem_id)]
    return [
        ExecuteBatch(
            run_id=run_id, problem_id=problem_id, batch_no=no, solution_ids=list(solution_ids)
        )
        for no, solution_ids in batches
    ]
