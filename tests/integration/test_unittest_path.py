"""The CodeRM path: chat completions -> code blocks and unittest classes -> verdicts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.stack import Services, Stack, cli, metrics, query, submit, wait_run_finished

pytestmark = pytest.mark.integration

FENCE = "`" * 3
CORRECT = f"""Here is my solution:
{FENCE}python
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False
{FENCE}
"""
WRONG = f"""{FENCE}python
def has_close_elements(numbers, threshold):
    return False
{FENCE}"""
LOOPS = f"""{FENCE}python
def has_close_elements(numbers, threshold):
    while True:
        pass
{FENCE}"""
NO_CODE = "I am sorry, I cannot write this function."
GOOD_TEST = f"""{FENCE}python
import unittest
from your_module import has_close_elements


class TestHasCloseElements(unittest.TestCase):
    def test_close(self):
        self.assertTrue(has_close_elements([1.0, 2.0, 2.05], 0.1))

    def test_far(self):
        self.assertFalse(has_close_elements([1.0, 2.0], 0.5))


if __name__ == '__main__':
    unittest.main()
{FENCE}"""
BAD_TEST = f"""{FENCE}python
import unittest


class TestWrong(unittest.TestCase):
    def test_impossible(self):
        self.assertEqual(has_close_elements([], 1.0), 42)
{FENCE}"""


def _write(path: Path, completions: list[str]) -> Path:
    path.write_text(json.dumps({"task_id": "HumanEval/0", "completions": completions}) + "\n")
    return path


@pytest.mark.usefixtures("imported")
def test_chat_run_extracts_executes_and_selects(
    stack: Stack, services: Services, tmp_path: Path
) -> None:
    """No-code completions are recorded as such; CodeRM voting picks the correct solution."""
    for model, role, texts in (
        ("chat-policy", "solution", [CORRECT, WRONG, LOOPS, NO_CODE]),
        ("chat-ut", "test", [GOOD_TEST, BAD_TEST, NO_CODE, GOOD_TEST]),
    ):
        file = _write(tmp_path / f"{model}.jsonl", texts)
        result = cli(
            stack,
            *("import-completions", str(file), "--benchmark", "humaneval", "--model", model),
            *("--role", role, "--format", "jsonl", "--completion-format", "chat"),
        )
        assert result.returncode == 0, result.stdout + result.stderr
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--policy", "chat-policy", "--test-model", "chat-ut"),
        *("--n", "4", "--m", "4", "--problems", "1"),
    )
    wait_run_finished(stack, services, run_id, timeout=180)

    statuses = {
        (r["role"], r["sample_index"]): r["extraction_status"]
        for r in query(
            stack,
            """SELECT c.role, c.sample_index, c.extraction_status FROM completions c
               JOIN run_completions rc ON rc.completion_id = c.id WHERE rc.run_id = $1""",
            uuid.UUID(run_id),
        )
    }
    assert statuses[("solution", 3)] == "no_code_block"
    assert statuses[("test", 2)] == "no_code_block"
    assert statuses[("solution", 0)] == statuses[("test", 0)] == "ok"

    outcomes = sorted(
        (r["solution"], r["test"], r["outcome"])
        for r in query(
            stack,
            """SELECT cs.sample_index AS solution, min(ct.sample_index) AS test, e.outcome
               FROM executions e JOIN runs r ON r.id = $1 AND e.profile = r.exec_profile
               JOIN completion_solutions s ON s.solution_id = e.solution_id
               JOIN completions cs ON cs.id = s.completion_id AND cs.model_id = r.policy_model_id
               JOIN completion_tests t ON t.unit_test_id = e.unit_test_id
               JOIN completions ct ON ct.id = t.completion_id AND ct.model_id = r.test_model_id
               GROUP BY 1, e.unit_test_id, e.outcome""",
            uuid.UUID(run_id),
        )
    )
    assert outcomes == [
        (0, 0, "pass"),
        (0, 1, "fail"),
        (1, 0, "fail"),
        (1, 1, "fail"),
        (2, 0, "timeout"),
        (2, 1, "timeout"),
    ]
    got = metrics(stack, run_id)
    assert got["vanilla.pass@1"] == pytest.approx(25.0)
    assert got["coderm_majority.pass@1"] == pytest.approx(100.0)
    assert got["oracle.pass@1"] == pytest.approx(100.0)
