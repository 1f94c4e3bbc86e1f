"""The messages that drive a run, built once for the CLI, the extractor and resume."""

from __future__ import annotations

import uuid

from shared.enums import Role
from shared.messages import ExecuteBatch, GenerateRequest, ScoreProblem
from shared.runs.fanout import batch_requests, generate_requests

RUN = uuid.UUID(int=7)


def test_generate_requests_one_per_problem_and_role() -> None:
    """Solutions then tests for each problem, with the run's counts."""
    assert generate_requests(RUN, [3, 5], n_solutions=10, n_tests=4) == [
        GenerateRequest(run_id=RUN, problem_id=3, role=Role.SOLUTION, count=10),
        GenerateRequest(run_id=RUN, problem_id=3, role=Role.TEST, count=4),
        GenerateRequest(run_id=RUN, problem_id=5, role=Role.SOLUTION, count=10),
        GenerateRequest(run_id=RUN, problem_id=5, role=Role.TEST, count=4),
    ]


def test_batch_requests_keep_batch_numbers() -> None:
    """One execute request per planned batch, numbered as planned."""
    assert batch_requests(RUN, 9, [(0, [1, 2]), (1, [3])]) == [
        ExecuteBatch(run_id=RUN, problem_id=9, batch_no=0, solution_ids=[1, 2]),
        ExecuteBatch(run_id=RUN, problem_id=9, batch_no=1, solution_ids=[3]),
    ]


def test_a_problem_with_nothing_to_run_goes_straight_to_scoring() -> None:
    """No batch (no solution or no test): the score request that closes the problem."""
    assert batch_requests(RUN, 9, []) == [ScoreProblem(run_id=RUN, problem_id=9)]
