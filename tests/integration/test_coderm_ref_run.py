"""A run with the ``coderm-ref`` profile, through the real services, on CodeRM's own
file shapes: solutions as CodeRM's inference output (``{messages, responses}``), unit
tests as its ``ut_*_100.jsonl`` (already wrapped, with ``output`` and ``locals_dict``).

Checked against what CodeRM's scripts do on the same files: responses without exactly
one code block are not candidates; a wrapped test without ``import unittest`` runs (the
executor injects it); a solution is labelled by evalplus's plus inputs alone; and the
report's ``calculate_result.py`` figure equals a literal transcription of that
procedure fed the stored matrix in CodeRM's own dict shapes.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Services, Stack, cli, metrics, query, submit, wait_run_finished
from tests.unit.test_coderm_reference import transcription

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
FENCE = "`" * 3
DRIVER = (
    "\n\nsuite = unittest.TestLoader().loadTestsFromTestCase({name})\n"
    "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
    "result = runner.run(suite)\n"
    "locals_dict['result'] = result\n"
)


def answer(code: str) -> str:
    """A chat answer holding one python block."""
    return f"Here it is:\n{FENCE}python\n{code}\n{FENCE}\nDone."


def wrapped(body: str, name: str) -> str:
    """A unit test as CodeRM's extract_unit_test.py writes it into ut_*_100.jsonl."""
    return body + DRIVER.format(name=name)


CLOSE = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
    " for j, b in enumerate(numbers) if i != j)"
)
SEPARATE = (
    "def separate_paren_groups(paren_string):\n"
    "    groups, depth, current = [], 0, ''\n"
    "    for c in paren_string.replace(' ', ''):\n"
    "        current += c\n"
    "        depth += 1 if c == '(' else -1\n"
    "        if depth == 0:\n"
    "            groups.append(current)\n"
    "            current = ''\n"
    "    return groups"
)
#: response texts per task (sol_ids in CodeRM count only those with one code block)
RESPONSES = {
    "HumanEval/0": [
        answer(CLOSE),
        "I cannot solve this.",  # no code block: not a candidate under coderm-ref
        answer("def has_close_elements(numbers, threshold):\n    return False"),
        answer(CLOSE),
    ],
    "HumanEval/1": [
        answer(SEPARATE),
        answer("def separate_paren_groups(paren_string):\n    return [paren_string]"),
    ],
    "HumanEval/2": [
        # fails HumanEval+'s base input 3.5, passes every plus input: correct for CodeRM
        answer(
            "def truncate_number(number):\n"
            "    return 0.0 if number == 3.5 else number - int(number)"
        ),
        answer("def truncate_number(number):\n    return number - int(number)"),
        answer("def truncate_number(number):\n    return number"),
    ],
}
TESTS = {
    "HumanEval/0": [
        wrapped(
            "import unittest\n\nclass TestClose(unittest.TestCase):\n"
            "    def test_close(self):\n"
            "        self.assertTrue(has_close_elements([1.0, 2.0, 2.05], 0.1))\n"
            "    def test_far(self):\n"
            "        self.assertFalse(has_close_elements([1.0, 2.0], 0.5))",
            "TestClose",
        ),
        # no import: CodeRM's executor injects unittest
        wrapped(
            "\nclass TestOne(unittest.TestCase):\n"
            "    def test_one(self):\n"
            "        self.assertTrue(has_close_elements([0.0, 0.01], 0.05))",
            "TestOne",
        ),
    ],
    "HumanEval/1": [
        wrapped(
            "import unittest\n\nclass TestGroups(unittest.TestCase):\n"
            "    def test_groups(self):\n"
            "        self.assertEqual(separate_paren_groups('( ) (())'), ['()', '(())'])",
            "TestGroups",
        )
    ],
    "HumanEval/2": [
        wrapped(
            "import unittest\n\nclass TestBase(unittest.TestCase):\n"
            "    def test_base(self):\n"
            "        self.assertAlmostEqual(truncate_number(3.5), 0.5)",
            "TestBase",
        ),
        wrapped(
            "import unittest\n\nclass TestOther(unittest.TestCase):\n"
            "    def test_other(self):\n"
            "        self.assertAlmostEqual(truncate_number(1.25), 0.25)",
            "TestOther",
        ),
    ],
}


def _jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="UTF-8") as fp:
        for line in lines:
            fp.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def _inference_file(path: Path) -> Path:
    """The policy's answers as CodeRM's merged inference output: one line a problem, in
    the order of CodeRM's prompt file, its messages as the prompt file has them."""
    with gzip.open(DATA / "coderm-prompts" / "input_humaneval+_sol.jsonl.gz", "rt") as f:
        prompts = {r["task_id"]: r["messages"] for r in map(json.loads, f)}
    return _jsonl(
        path,
        [{"messages": prompts[task], "responses": texts} for task, texts in RESPONSES.items()],
    )


@pytest.fixture(scope="module")
def ref_run(stack: Stack, services: Services, tmp_path_factory: pytest.TempPathFactory) -> str:
    """HumanEval+ (with CodeRM's prompts) and the two CodeRM files imported; one run."""
    folder = tmp_path_factory.mktemp("coderm-ref-run")
    steps = [
        (
            "import-benchmark",
            "humaneval+",
            "--file",
            str(DATA / "evalplus" / "HumanEvalPlus.jsonl.gz"),
            "--coderm-prompts",
            str(DATA / "coderm-prompts"),
        ),
        (
            "import-completions",
            str(_inference_file(folder / "merge_result.jsonl")),
            *("--benchmark", "humaneval+", "--model", "ref-policy", "--role", "solution"),
            *("--format", "coderm-inference"),
        ),
        (
            "import-completions",
            str(
                _jsonl(
                    folder / "ut_ref-ut_100.jsonl",
                    [{"task_id": t, "unit_tests": tests} for t, tests in TESTS.items()],
                )
            ),
            *("--benchmark", "humaneval+", "--model", "ref-ut", "--role", "test"),
            *("--format", "coderm-ut"),
        ),
    ]
    for step in steps:
        result = cli(stack, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    run_id = submit(
        stack,
        *("--benchmark", "humaneval+", "--policy", "ref-policy", "--test-model", "ref-ut"),
        *("--n", "4", "--m", "2", "--problems", "3", "--profile", "coderm-ref"),
    )
    wait_run_finished(stack, services, run_id, timeout=300)
    return run_id


@pytest.mark.usefixtures("ref_run")
def test_tests_wrapped_as_coderm_wraps_them_need_its_profile(stack: Stack) -> None:
    result = cli(
        stack,
        "run",
        *("--benchmark", "humaneval+", "--policy", "ref-policy", "--test-model", "ref-ut"),
        *("--n", "4", "--m", "2", "--problems", "3", "--detach"),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--profile coderm-ref" in " ".join(result.stdout.split())


def test_a_coderm_ref_run_follows_coderms_scripts(stack: Stack, ref_run: str) -> None:
    run = query(stack, "SELECT exec_profile, config FROM runs WHERE id = $1", uuid.UUID(ref_run))
    assert "/unittest-ref/" in run[0]["exec_profile"]
    assert json.loads(run[0]["config"])["profile"] == "coderm-ref"

    labels = {
        (r["task_id"], r["sample_index"]): (r["passed"], r["plus_passed"])
        for r in query(
            stack,
            """SELECT p.task_id, c.sample_index, g.passed, g.plus_passed
               FROM run_completions rc JOIN completions c ON c.id = rc.completion_id
               JOIN problems p ON p.id = c.problem_id
               JOIN completion_solutions cs ON cs.completion_id = c.id
               JOIN runs r ON r.id = rc.run_id
               JOIN ground_truth g ON g.solution_id = cs.solution_id
                    AND g.profile = r.ground_truth_profile
               WHERE rc.run_id = $1""",
            uuid.UUID(ref_run),
        )
    }
    assert labels[("HumanEval/2", 0)] == (False, True)  # base 3.5 wrong, plus all right
    assert labels[("HumanEval/2", 1)] == (True, True)

    got = metrics(stack, ref_run)
    # candidates: HumanEval/0's answer without code is not one (2 of 3 correct, not 2 of 4);
    # HumanEval/2's first answer is correct by its plus inputs
    assert got["vanilla.pass@1"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 2 / 3) / 3)
    # the test without `import unittest` ran: the correct answers pass both tests
    assert got["coderm_majority.pass@1"] == pytest.approx(100.0)


def _reference_shapes(
    stack: Stack, run_id: str
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The run's matrix as CodeRM's files would give it: labels keyed ``task-sol_id``,
    results keyed ``task-sol_id-ut_id``; sol_id counts the answers with code, ut_id is
    the test's position in the ut file."""
    sols = query(
        stack,
        """SELECT p.task_id, p.position, c.sample_index, cs.solution_id, g.plus_passed
           FROM run_completions rc JOIN completions c ON c.id = rc.completion_id
           JOIN problems p ON p.id = c.problem_id
           JOIN runs r ON r.id = rc.run_id
           JOIN completion_solutions cs ON cs.completion_id = c.id
           JOIN ground_truth g ON g.solution_id = cs.solution_id
                AND g.profile = r.ground_truth_profile
           WHERE rc.run_id = $1 AND rc.role = 'solution'
           ORDER BY p.position, c.sample_index""",
        uuid.UUID(run_id),
    )
    tests = query(
        stack,
        """SELECT p.task_id, c.sample_index, ct.unit_test_id
           FROM run_completions rc JOIN completions c ON c.id = rc.completion_id
           JOIN problems p ON p.id = c.problem_id
           JOIN completion_tests ct ON ct.completion_id = c.id
           WHERE rc.run_id = $1 AND rc.role = 'test'""",
        uuid.UUID(run_id),
    )
    verdicts = {
        (r["solution_id"], r["unit_test_id"]): r["passed"]
        for r in query(
            stack,
            """SELECT e.solution_id, e.unit_test_id, e.passed FROM executions e
               JOIN runs r ON r.id = $1 AND e.profile = r.exec_profile""",
            uuid.UUID(run_id),
        )
    }
    task_ids: list[str] = []
    labels: dict[str, str] = {}
    results: dict[str, str] = {}
    sol_ids: dict[str, int] = {}
    for row in sols:
        task = row["task_id"]
        if task not in task_ids:
            task_ids.append(task)
        sol_id = sol_ids[task] = sol_ids.get(task, -1) + 1
        labels[f"{task}-{sol_id}"] = "pass" if row["plus_passed"] else "fail"
        for test in tests:
            if test["task_id"] == task:
                ok = verdicts[(row["solution_id"], test["unit_test_id"])]
                key = f"{task}-{sol_id}-{test['sample_index']}"
                results[key] = "pass" if ok else "fail"
    return task_ids, labels, results


def test_report_gives_calculate_results_figure(stack: Stack, ref_run: str) -> None:
    for ut_num, sample_num, seed in ((1, 20, 3), (100, 2, 0)):
        result = cli(
            stack,
            *("report", ref_run, "--format", "json", "--ut-num", str(ut_num)),
            *("--sample-num", str(sample_num), "--seed", str(seed)),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        figure = json.loads(result.stdout)["analysis"]["coderm_reference"]
        task_ids, labels, results = _reference_shapes(stack, ref_run)
        random.seed(seed)
        expected, repetitions = transcription(task_ids, labels, results, 100, ut_num, sample_num)
        assert figure["figure"] == pytest.approx(100 * expected, abs=1e-9)
        assert figure["repetitions"] == pytest.approx([100 * r for r in repetitions], abs=1e-9)
