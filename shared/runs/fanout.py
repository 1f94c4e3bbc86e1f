"""The messages that drive a run, built in one place (pure: no I/O).

A run starts with one generate request per problem and role; an extracted problem
continues with one execute request per planned batch, or a score request when it has
no batch (nothing to run: no solution or no test). A later round of a run with a test
budget asks for more test samples of the problems it grants them to.
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


ROUND_BATCH_STRIDE = 10_000
"""Batch numbers of round r of a run with a test budget start at ``(r - 1) x`` this (a
round has at most one batch a solution sample, and a problem at most 10,000 of them),
so a round's batches never collide with an earlier round's, and planning a round again
gives the same numbers."""


def solution_requests(run_id: uuid.UUID, problem_ids: Iterable[int], count: int) -> list[Message]:
    """A generate request per problem for ``count`` solution samples."""
    return [
        GenerateRequest(run_id=run_id, problem_id=pid, role=Role.SOLUTION, count=count)
        for pid in problem_ids
    ]


def round_requests(
    run_id: uuid.UUID, round_no: int, grants: Iterable[tuple[int, int, int]]
) -> list[Message]:
    """Round ``round_no``'s test generate requests: one per ``(problem_id, tests_before,
    granted)`` with a grant, for the samples after those the problem has."""
    return [
        GenerateRequest(
            run_id=run_id,
            problem_id=problem_id,
            role=Role.TEST,
            count=granted,
            start=before,
            round=round_no,
        )
        for problem_id, before, granted in grants
        if granted > 0
    ]


def batch_requests(
    run_id: uuid.UUID, problem_id: int, batches: Sequence[tuple[int, Sequence[int]]]
) -> list[Message]:
    """An execute request per ``(batch_no, solution_ids)`` batch of an extracted problem
    (of its current round), or the score request that closes it when it has none."""
    if not batches:
        return [ScoreProblem(run_id=run_id, problem_id=problem_id)]
    return [
        ExecuteBatch(
            run_id=run_id, problem_id=problem_id, batch_no=no, solution_ids=list(solution_ids)
        )
        for no, solution_ids in batches
    ]
