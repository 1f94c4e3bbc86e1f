"""exec-pairs' pure parts: reading pairs, splitting modules, planning, output lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.client import JobResult
from services.cli.exec_pairs import (
    ExecOptions,
    PairLine,
    PairsFormatError,
    plan,
    read_pairs,
    result_lines,
    solution_splits,
)
from shared.enums import Outcome

SOLUTIONS = {
    0: "def f(x):\n    return x + 1\n",
    1: "def f(x):\n\n    return x + 2\n",  # a blank line inside the solution
    2: "import math\n\ndef f(x):\n    return math.floor(x)\n",
}
TESTS = {
    0: "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n",
    1: "import unittest\n\nclass T(unittest.TestCase):\n    def test_b(self):\n        pass\n",
}


def pairs_of(task: str = "t") -> list[PairLine]:
    """Every solution x every test; ``task`` also marks the tests' text."""
    return [
        PairLine(task, s, t, f"{SOLUTIONS[s]}\n\n{TESTS[t]}# {task}\n")
        for s in SOLUTIONS
        for t in TESTS
    ]


def test_splits_reproduce_each_module_and_share_the_parts() -> None:
    pairs = pairs_of()
    splits = solution_splits(pairs)
    solution_parts: dict[object, set[str]] = {}
    test_parts: dict[object, set[str]] = {}
    for pair, split in zip(pairs, splits, strict=True):
        assert split is not None
        solution, test = pair.code[:split], pair.code[split + 2 :]
        assert pair.code == f"{solution}\n\n{test}"
        solution_parts.setdefault(pair.sol_id, set()).add(solution)
        test_parts.setdefault(pair.ut_id, set()).add(test)
    assert all(len(parts) == 1 for parts in solution_parts.values())
    assert all(len(parts) == 1 for parts in test_parts.values())
    # each solution's own text (with its inner blank lines) stays in the solution part
    assert all(
        next(iter(solution_parts[s])).startswith(SOLUTIONS[s].rstrip("\n")) for s in SOLUTIONS
    )


def test_a_module_with_no_boundary_is_not_split() -> None:
    pairs = [PairLine("t", 0, 0, "x = 1"), PairLine("t", 0, 1, "x = 2")]
    assert solution_splits(pairs) == [None, None]


def test_plan_runs_identical_modules_once_in_batches_of_whole_problems() -> None:
    pairs = [*pairs_of("a"), *pairs_of("b"), pairs_of("a")[0]]
    planned = plan(pairs, ExecOptions(batch_pairs=4, containers=1))
    jobs = [job for batch in planned.batches for job in batch]
    assert len(jobs) == 12  # the repeated pair runs once
    assert planned.job_of_pair[-1] == planned.job_of_pair[0]
    assert [len(batch) for batch in planned.batches] == [6, 6]  # a problem is not cut
    assert len(plan(pairs, ExecOptions(batch_pairs=100, containers=2)).batches) == 2
    assert all(job.parts() is not None for job in jobs)
    assert {job.time_limit_s for job in jobs} == {1.0}


def test_result_lines_follow_the_input_order() -> None:
    pairs = pairs_of()[:2]
    planned = plan(pairs, ExecOptions())
    results = {
        planned.job_of_pair[0]: JobResult("", Outcome.PASS, 1, 1, 2.0, None),
        planned.job_of_pair[1]: JobResult("", Outcome.TIMEOUT, None, None, 1100.0, "x"),
    }
    lines = list(result_lines(pairs, planned.job_of_pair, results))
    assert lines == [
        {
            "task_id": "t",
            "sol_id": 0,
            "ut_id": 0,
            "result": "pass",
            "outcome": "pass",
            "duration_ms": 2.0,
        },
        {
            "task_id": "t",
            "sol_id": 0,
            "ut_id": 1,
            "result": "fail",
            "outcome": "timeout",
            "duration_ms": 1100.0,
        },
    ]


def test_read_pairs_rejects_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"task_id": "t", "sol_id": 1, "ut_id": "u", "code": "x"}) + "\n\n")
    assert read_pairs(good) == [PairLine("t", 1, "u", "x")]
    for bad in (
        '{"task_id": "t"}',
        "not json",
        '{"task_id": 1, "sol_id": 1, "ut_id": 1, "code": 2}',
    ):
        path = tmp_path / "bad.jsonl"
        path.write_text(bad + "\n")
        with pytest.raises(PairsFormatError, match=r"bad\.jsonl:1"):
            read_pairs(path)
