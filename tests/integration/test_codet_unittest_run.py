"""CodeT solution bodies against CodeT test samples imported as CodeRM unittest classes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from typing import Any

import pytest

from shared.core.codet_unittest import codet_sample_to_unittest
from shared.core.extraction import (
    extract_chat_unittest,
    extract_completion_solution,
    pair_code,
)
from tests.stack import ROOT, Services, Stack, cli, query, submit, wait_run_finished

pytestmark = pytest.mark.integration
DEMO = ROOT / "data" / "demo"
N, M, PROBLEMS = 10, 30, 4
MARK = "coderm-oracle-pass-7d1f"


def _load(name: str) -> list[dict[str, Any]]:
    with gzip.open(DEMO / name, "rt") as handle:
        return [json.loads(line) for line in handle]


def import_as_unittest(stack: Stack, model: str) -> None:
    """The demo's CodeT test samples as CodeRM-style tests, through the real CLI."""
    result = cli(
        stack,
        *("import-completions", str(DEMO / "codegen16b_tests.jsonl.gz")),
        *("--benchmark", "humaneval", "--model", model, "--role", "test", "--as-unittest"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def expected_matrix() -> dict[str, tuple[set[str], set[str], list[bool]]]:
    """Per task: the solutions and wrapped tests the run must hold, computed here from
    the files, and which of the first ``M`` test samples yield a class."""
    problems = _load("humaneval.jsonl.gz")[:PROBLEMS]
    entry_points = {
        prompt["prompt"]: problem["entry_point"]
        for prompt, problem in zip(
            _load("humaneval_test_prompts.jsonl.gz"), _load("humaneval.jsonl.gz"), strict=True
        )
    }
    solutions = {r["prompt"]: r["samples"] for r in _load("codegen16b_solutions.jsonl.gz")}
    tests = {entry_points[r["prompt"]]: r["samples"] for r in _load("codegen16b_tests.jsonl.gz")}
    out = {}
    for problem in problems:
        prompt, entry_point = problem["prompt"], problem["entry_point"]
        codes = {extract_completion_solution(prompt, s).code[0] for s in solutions[prompt][:N]}
        converted = [codet_sample_to_unittest(s, entry_point) for s in tests[entry_point][:M]]
        wrapped = {extract_chat_unittest(c).code[0] for c in converted if c is not None}
        out[problem["task_id"]] = (codes, wrapped, [c is not None for c in converted])
    return out


def plain_verdict(code: str) -> bool:
    """Independent oracle: the pair module in a plain interpreter, 1 s, no sandbox."""
    program = f"{code}\n\nif result.wasSuccessful():\n    print({MARK!r})\n"
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, timeout=1, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and MARK in done.stdout.decode(errors="replace")


@pytest.mark.usefixtures("imported")
def test_bodies_against_unittest_classes(stack: Stack, services: Services) -> None:
    """Solutions are prompt + body, tests CodeRM-wrapped classes, 1 s semantics; the
    stored matrix is complete and its verdicts equal a plain re-execution."""
    import_as_unittest(stack, "codegen16b-ut")
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b-ut"),
        *("--n", str(N), "--m", str(M), "--problems", str(PROBLEMS)),
    )
    wait_run_finished(stack, services, run_id, timeout=240)
    rid = uuid.UUID(run_id)

    run = query(stack, "SELECT test_style, config FROM runs WHERE id = $1", rid)[0]
    assert run["test_style"] == "unittest"
    limits = json.loads(run["config"])["limits"]
    assert (limits["time_limit_s"], limits["kill_after_s"]) == (1.0, 2.0)

    statuses = query(
        stack,
        """SELECT p.task_id, c.sample_index, c.extraction_status FROM run_completions rc
           JOIN completions c ON c.id = rc.completion_id JOIN problems p ON p.id = c.problem_id
           WHERE rc.run_id = $1 AND rc.role = 'test'""",
        rid,
    )
    expected = expected_matrix()
    assert len(statuses) == PROBLEMS * M
    for row in statuses:
        yields = expected[row["task_id"]][2][row["sample_index"]]
        assert (row["extraction_status"] == "ok") is yields, row
        assert row["extraction_status"] in {"ok", "no_code_block", "empty"}, row

    rows = query(
        stack,
        """SELECT p.task_id, s.code AS solution, t.code AS test, e.passed, e.outcome
           FROM runs r JOIN execution_batches b ON b.run_id = r.id
           JOIN problems p ON p.id = b.problem_id
           JOIN solutions s ON s.problem_id = p.id
           JOIN executions e ON e.solution_id = s.id AND e.profile = r.exec_profile
           JOIN unit_tests t ON t.id = e.unit_test_id
           WHERE r.id = $1 AND s.id::text IN (SELECT jsonb_array_elements_text(b.solution_ids))
             AND t.id IN (SELECT ct.unit_test_id FROM completion_tests ct
                          JOIN run_completions rt ON rt.completion_id = ct.completion_id
                          WHERE rt.run_id = r.id)""",
        rid,
    )
    stored: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in rows:
        stored[row["task_id"]].add((row["solution"], row["test"]))
    for task_id, (solutions, tests, _) in expected.items():
        assert stored[task_id] == {(s, t) for s in solutions for t in tests}, task_id
    assert sum(len(tests) for _, tests, _ in expected.values()) > 0
    disagree = [
        (row["task_id"], row["outcome"])
        for row in rows
        if plain_verdict(pair_code(row["solution"], row["test"])) != row["passed"]
    ]
    assert not disagree, disagree
    assert any(row["passed"] for row in rows) and not all(row["passed"] for row in rows)
