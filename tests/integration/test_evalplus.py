"""evalplus ground truth through the real stack: import, expected outputs computed by the
executor in its sandbox (the CLI has no Docker), base and plus verdicts, checked against
evalplus's own -OriginFmt tests."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import math
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.coderm_runner.evalplus_check import outputs_match
from shared.core.oracle import Oracle, outputs_profile
from shared.core.pyliteral import decode
from shared.messages import ComputeExpected
from tests.stack import (
    ROOT,
    Services,
    Stack,
    cli,
    dead_reason,
    delete_topology,
    publish_raw,
    query,
    queue_depth,
    submit,
    take_dead,
    wait_for,
    wait_run_finished,
)
from tests.unit.test_benchmarks import origin_literal

pytestmark = pytest.mark.integration
DATA = ROOT / "tests" / "data"
EVALPLUS = DATA / "evalplus"
PROMPTS = DATA / "coderm-prompts"
FENCE = "`" * 3


def _records(name: str) -> dict[str, dict[str, Any]]:
    with gzip.open(EVALPLUS / name, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {str(r["task_id"]).replace("Mbpp/", ""): r for r in rows}


HUMANEVAL = _records("HumanEvalPlus.jsonl.gz")
MBPP = _records("MbppPlus.jsonl.gz")
ORIGIN = {**_records("HumanEvalPlus-OriginFmt.jsonl.gz"), **_records("MbppPlus-OriginFmt.jsonl.gz")}


def _key(task_id: str) -> str:
    return task_id.replace("Mbpp/", "")


NO_DOCKER = {
    "DOCKER_HOST": "unix:///nonexistent",
    "CODERM_SANDBOX__DOCKER_URL": "unix:///nonexistent",
}


def cli_without_docker(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``coderm`` command, as :func:`tests.stack.cli` runs it, with no Docker
    engine reachable: the expected outputs must come from the executor."""
    return subprocess.run(
        [sys.executable, "-c", "from services.cli.app import main; main()", *args],
        cwd=ROOT,
        env=stack.env(COLUMNS="200", **NO_DOCKER),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def evalplus_imported(stack: Stack, services: Services) -> Iterator[dict[str, str]]:
    """HumanEval+, MBPP+ (slices) and LiveCodeBench imported with CodeRM's prompts, by a
    CLI without Docker (the running executor computes the expected outputs)."""
    outputs = {}
    for name, args in (
        ("humaneval+", ("--file", str(EVALPLUS / "HumanEvalPlus.jsonl.gz"))),
        ("mbpp+", ("--file", str(EVALPLUS / "MbppPlus.jsonl.gz"))),
        ("livecodebench", ()),
    ):
        result = cli_without_docker(
            stack, "import-benchmark", name, *args, "--coderm-prompts", str(PROMPTS)
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs[name] = result.stdout
    yield outputs


def _oracles(stack: Stack, benchmark: str) -> dict[str, tuple[str, Oracle]]:
    rows = query(
        stack,
        """SELECT p.task_id, p.entry_point, p.oracle FROM problems p
           JOIN benchmarks b ON b.id = p.benchmark_id WHERE b.name = $1""",
        benchmark,
    )
    return {
        r["task_id"]: (r["entry_point"], Oracle.model_validate(json.loads(r["oracle"])))
        for r in rows
    }


def _expected_counts(output: str) -> tuple[int, int]:
    """``(computed, already stored)`` from import-benchmark's summary line."""
    found = re.search(r"expected outputs: (\d+) computed, (\d+) already stored", output)
    assert found, output
    return int(found[1]), int(found[2])


def test_import_stores_prompts_and_expected_outputs_equal_to_evalplus(
    stack: Stack, evalplus_imported: dict[str, str]
) -> None:
    """The canonical outputs computed in our sandbox pass evalplus's comparison against the
    expected outputs evalplus wrote into its -OriginFmt tests, input by input."""
    assert "CodeRM prompts: 4 of 4 matched" in evalplus_imported["humaneval+"]
    computed, already = _expected_counts(evalplus_imported["humaneval+"])
    assert computed + already == 4, "other modules of the session may have imported it first"
    assert "expected outputs: 5 computed" in evalplus_imported["mbpp+"]
    assert "3 problems have no hidden tests" in evalplus_imported["livecodebench"]
    again = cli_without_docker(
        stack, "import-benchmark", "humaneval+", "--file", str(EVALPLUS / "HumanEvalPlus.jsonl.gz")
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 new" in again.stdout and "0 computed, 4 already stored" in again.stdout

    compared = 0
    for benchmark, dataset in (("humaneval+", "humaneval"), ("mbpp+", "mbpp")):
        for task_id, (entry, oracle) in _oracles(stack, benchmark).items():
            assert oracle.expected is not None and oracle.unavailable is None
            ours = decode(oracle.expected.base) + decode(oracle.expected.plus)
            inputs = decode(oracle.base_input) + decode(oracle.plus_input)
            test = ORIGIN[_key(task_id)]["test"]
            theirs = dict(
                zip(
                    map(repr, origin_literal(test, "inputs")),
                    origin_literal(test, "results"),
                    strict=True,
                )
            )
            assert len(ours) == len(inputs), task_id
            for out, inp in zip(ours, inputs, strict=True):
                exp = theirs[repr(inp)]  # the -OriginFmt file drops repeated inputs
                assert outputs_match(out, exp, inp, oracle.atol, entry, dataset)[0], (task_id, inp)
                compared += 1
    assert compared > 1500
    messages = query(
        stack,
        """SELECT count(*) AS n FROM problems p JOIN benchmarks b ON b.id = p.benchmark_id
           WHERE b.name IN ('humaneval+', 'mbpp+', 'livecodebench')
           AND p.solution_messages IS NOT NULL AND p.test_messages IS NOT NULL""",
    )
    assert messages[0]["n"] == 4 + 5 + 3


@pytest.fixture
def unserved(stack: Stack) -> Iterator[Stack]:
    """The session's database with a queue prefix no service consumes (yet); its topology
    is deleted afterwards."""
    slice_ = dataclasses.replace(stack, queue_prefix=f"{stack.queue_prefix}-unserved")
    try:
        yield slice_
    finally:
        asyncio.run(delete_topology(slice_))


def test_import_without_an_executor_says_so_and_loses_nothing(unserved: Stack) -> None:
    """No executor consumes the requests: the import says so in one line and exits
    non-zero, and the requests stay queued. An import waiting when an executor starts
    gets every outcome; a problem whose canonical solution failed before is asked for
    again by the next import."""
    file = str(EVALPLUS / "HumanEvalPlus.jsonl.gz")
    args = ("import-benchmark", "he+queued", "--format", "humaneval+", "--file", file)
    waited = cli_without_docker(unserved, *args, "--executor-wait", "1")
    assert waited.returncode != 0, waited.stdout + waited.stderr
    said = " ".join(waited.stdout.split())
    assert f"no executor consumed {unserved.queue_prefix}.expected" in said, said
    assert "4 of 4 problems wait for one; their requests stay queued (1 in" in said, said
    assert queue_depth(unserved, "expected") == 1  # four problems, one request

    waiting = subprocess.Popen(
        [sys.executable, "-c", "from services.cli.app import main; main()", *args],
        cwd=ROOT,
        env=unserved.env(COLUMNS="200", **NO_DOCKER),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    executor = Services(unserved)
    try:
        wait_for(lambda: queue_depth(unserved, "expected") == 2, 60, "the second request")
        executor.start("executor-unserved", "executor")
        output, _ = waiting.communicate(timeout=600)
        assert waiting.returncode == 0, output
        assert "expected outputs: 4 computed, 0 already stored" in output, output
        query(
            unserved,
            """UPDATE problems SET oracle = oracle - 'expected' || '{"unavailable": "old"}'
               WHERE task_id = 'HumanEval/0' AND benchmark_id =
               (SELECT id FROM benchmarks WHERE name = 'he+queued')""",
        )
        again = cli_without_docker(unserved, *args)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "expected outputs: 1 computed, 3 already stored" in again.stdout, again.stdout
    finally:
        waiting.kill()
        waiting.wait()
        executor.stop_all()
    oracles = _oracles(unserved, "he+queued")
    assert all(o.expected is not None and o.unavailable is None for _, o in oracles.values())


@pytest.mark.usefixtures("services")
def test_malformed_or_unknown_expected_requests_are_dead_lettered(stack: Stack) -> None:
    """A body that is no ``ComputeExpected``, and one naming problems that are not
    evalplus problems of its benchmark, go to the dead-letter queue with the reason."""
    asyncio.run(publish_raw(stack, "expected", b'{"benchmark_id": 1}'))
    dead = asyncio.run(take_dead(stack, "expected", 1))
    assert dead_reason(dead[0]).startswith("invalid message"), dead_reason(dead[0])
    unknown = ComputeExpected(benchmark_id=10**6, problem_ids=[10**6])
    asyncio.run(publish_raw(stack, "expected", unknown.to_body()))
    dead = asyncio.run(take_dead(stack, "expected", 1))
    assert dead_reason(dead[0]).startswith("UnknownReferenceError"), dead_reason(dead[0])


def _chat(code: str) -> str:
    return f"Here it is:\n{FENCE}python\n{code.strip()}\n{FENCE}\n"


def _canonical(task_id: str) -> str:
    record = {**HUMANEVAL, **MBPP}[_key(task_id)]
    return str(record["prompt"]) + str(record["canonical_solution"])


def _with_first_line(code: str, signature: str, line: str) -> str:
    """``code`` with ``line`` inserted as the first statement of ``signature``'s body."""
    return code.replace(signature, f"{signature}\n    {line}", 1)


SOLUTIONS: dict[str, list[tuple[str, str, tuple[bool, bool]]]] = {
    # task id -> [(label, code, (base_passed, passed))]
    "HumanEval/0": [
        ("canonical", _canonical("HumanEval/0"), (True, True)),
        (
            "wrong on long lists only",
            _with_first_line(
                _canonical("HumanEval/0"),
                "def has_close_elements(numbers: List[float], threshold: float) -> bool:",
                "if len(numbers) > 10: return False",
            ),
            (True, False),
        ),
        (
            "always true",
            "def has_close_elements(numbers, threshold):\n    return True\n",
            (False, False),
        ),
    ],
    "Mbpp/2": [
        ("canonical", _canonical("Mbpp/2"), (True, True)),
        (
            "other order (a set task)",
            "def similar_elements(a, b):\n"
            "    return tuple(sorted(set(a) & set(b), reverse=True))\n",
            (True, True),
        ),
    ],
    "Mbpp/3": [
        ("canonical", _canonical("Mbpp/3"), (True, True)),
        (
            "wrong above 1000",
            _with_first_line(
                _canonical("Mbpp/3"), "def is_not_prime(n):", "if n > 1000: return False"
            ),
            (True, False),
        ),
    ],
    "Mbpp/82": [
        (
            "within atol",
            "import math\ndef volume_sphere(r):\n    return 4.0 * math.pi * r * r * r / 3.0\n",
            (True, True),
        ),
        (
            "pi = 3.14159",
            "def volume_sphere(r):\n    return 4.0 * 3.14159 * r ** 3 / 3.0\n",
            (False, False),
        ),
    ],
}
TESTS = {
    "HumanEval/0": "self.assertTrue(has_close_elements([1.0, 1.05], 0.1))",
    "Mbpp/2": "self.assertEqual(set(similar_elements((1, 2), (2, 3))), {2})",
    "Mbpp/3": "self.assertTrue(is_not_prime(4))",
    "Mbpp/82": "self.assertGreater(volume_sphere(1), 4.18)",
}


def _test_completion(line: str) -> str:
    body = "import unittest\n\n\nclass TestIt(unittest.TestCase):\n    def test_it(self):\n"
    return _chat(f"{body}        {line}\n")


def _import_chat(
    stack: Stack,
    tmp: Path,
    benchmark: str,
    model: str,
    role: str,
    rows: dict[str, list[str]],
    completion_format: str = "chat",
) -> None:
    file = tmp / f"{benchmark}-{model}.jsonl"
    file.write_text(
        "".join(json.dumps({"task_id": t, "completions": c}) + "\n" for t, c in rows.items())
    )
    result = cli(
        stack,
        *("import-completions", str(file), "--benchmark", benchmark, "--model", model),
        *("--role", role, "--format", "jsonl", "--completion-format", completion_format),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _origin_check_passes(code: str, task_id: str, entry_point: str) -> bool:
    """evalplus's own verdict: the solution with the -OriginFmt test, in a plain process."""
    test = str(ORIGIN[_key(task_id)]["test"])
    program = f"{code}\n\n{test}\n"
    if task_id.startswith("HumanEval"):
        program += f"\ncheck({entry_point})\n"
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _labels(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """(task id, sample index, solution code, verdicts) of the run's solution samples."""
    rows = query(
        stack,
        """SELECT p.task_id, p.entry_point, c.sample_index, s.code, g.passed, g.base_passed,
                  g.outcome, g.profile
           FROM run_completions rc
           JOIN completions c ON c.id = rc.completion_id
           JOIN problems p ON p.id = c.problem_id
           JOIN completion_solutions cs ON cs.completion_id = c.id
           JOIN solutions s ON s.id = cs.solution_id
           JOIN runs r ON r.id = rc.run_id
           LEFT JOIN ground_truth g ON g.solution_id = s.id AND g.profile = r.ground_truth_profile
           WHERE rc.run_id = $1 AND rc.role = 'solution'
           ORDER BY p.task_id, c.sample_index""",
        uuid.UUID(run_id),
    )
    return [dict(r) for r in rows]


def test_base_and_plus_verdicts_through_the_pipeline(
    stack: Stack, services: Services, evalplus_imported: dict[str, str], tmp_path: Path
) -> None:
    """Canonical solutions pass; a solution right on the base inputs but wrong on a plus
    input gets base_passed and not passed; the verdicts equal evalplus's own check()."""
    for benchmark, tasks, problems in (
        ("humaneval+", ["HumanEval/0"], "1"),
        ("mbpp+", ["Mbpp/2", "Mbpp/3", "Mbpp/82"], "3"),
    ):
        _import_chat(
            stack,
            tmp_path,
            benchmark,
            "ep-policy",
            "solution",
            {t: [_chat(code) for _, code, _ in SOLUTIONS[t]] for t in tasks},
        )
        _import_chat(
            stack,
            tmp_path,
            benchmark,
            "ep-tests",
            "test",
            {t: [_test_completion(TESTS[t])] for t in tasks},
        )
        run_id = submit(
            stack,
            *("--benchmark", benchmark, "--policy", "ep-policy", "--test-model", "ep-tests"),
            *("--n", "3", "--m", "1", "--problems", problems),
        )
        wait_run_finished(stack, services, run_id, timeout=300)
        labels = _labels(stack, run_id)
        assert {row["profile"] for row in labels} == {outputs_profile(benchmark)}
        for row in labels:
            label, _, (base_passed, passed) = SOLUTIONS[row["task_id"]][row["sample_index"]]
            got = (row["base_passed"], row["passed"])
            assert got == (base_passed, passed), (row["task_id"], label, row["outcome"])
            assert _origin_check_passes(row["code"], row["task_id"], row["entry_point"]) is passed
        got_metrics = query(
            stack, "SELECT name FROM run_metrics WHERE run_id = $1", uuid.UUID(run_id)
        )
        assert "vanilla.pass@1" in {r["name"] for r in got_metrics}


@pytest.mark.usefixtures("imported")
def test_codet_humaneval_scored_with_humaneval_plus_ground_truth(
    stack: Stack, services: Services, evalplus_imported: dict[str, str]
) -> None:
    """CodeGen-16B samples of the CodeT set, run on HumanEval's prompts and labelled by
    HumanEval+ (task ids joined): labels agree with HumanEval+'s own -OriginFmt check()."""
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--ground-truth", "humaneval+"),
        *("--policy", "codegen16b", "--test-model", "codegen16b"),
        *("--n", "10", "--m", "10", "--problems", "3"),
    )
    wait_run_finished(stack, services, run_id, timeout=300)
    labels = _labels(stack, run_id)
    assert labels
    assert all(row["profile"] == outputs_profile("humaneval+", packages=False) for row in labels)
    assert all(row["base_passed"] is not None for row in labels)
    assert any(row["passed"] for row in labels) and not all(row["passed"] for row in labels)
    seen: dict[str, bool] = {}
    for row in labels:
        if row["outcome"] != "timeout" and row["code"] not in seen:
            seen[row["code"]] = row["passed"]
            assert (
                _origin_check_passes(row["code"], row["task_id"], row["entry_point"])
                is row["passed"]
            )
    assert len(seen) >= 5
    ground_truth = query(stack, "SELECT config FROM runs WHERE id = $1", uuid.UUID(run_id))
    assert json.loads(ground_truth[0]["config"])["ground_truth"]["benchmark"] == "humaneval+"


LCB_SOLUTION = """
from typing import List


class Solution:
    def maximumSetSize(self, nums1: List[int], nums2: List[int]) -> int:
        a, b = set(nums1), set(nums2)
        n = len(nums1) // 2
        only_a = min(len(a - b), n)
        only_b = min(len(b - a), n)
        return min(only_a + only_b + len(a & b), 2 * n)
"""
LCB_ASSERT = "Solution().maximumSetSize([1, 2, 1, 2], [1, 1, 1, 1]) == 2\n"


def test_livecodebench_runs_without_correctness_figures(
    stack: Stack, services: Services, evalplus_imported: dict[str, str], tmp_path: Path
) -> None:
    """No hidden tests: solutions and tests execute and selections are made, but no label,
    no correctness metric, and selection scores are NaN rather than 0."""
    wrong = "class Solution:\n    def maximumSetSize(self, nums1, nums2):\n        return 0\n"
    _import_chat(
        stack,
        tmp_path,
        "livecodebench",
        "lcb-policy",
        "solution",
        {"3228": [_chat(LCB_SOLUTION), _chat(wrong)]},
    )
    _import_chat(
        stack,
        tmp_path,
        "livecodebench",
        "lcb-tests",
        "test",
        {"3228": [LCB_ASSERT]},
        "completion",  # an assert continuation (CodeT style)
    )
    run_id = submit(
        stack,
        *("--benchmark", "livecodebench", "--policy", "lcb-policy", "--test-model", "lcb-tests"),
        *("--n", "2", "--m", "1", "--problems", "1"),
    )
    wait_run_finished(stack, services, run_id, timeout=240)
    labels = _labels(stack, run_id)
    assert len(labels) == 2 and all(row["passed"] is None for row in labels)
    passes = query(
        stack,
        """SELECT e.passed FROM executions e JOIN runs r ON r.exec_profile = e.profile
           JOIN completion_solutions cs ON cs.solution_id = e.solution_id
           JOIN run_completions rc ON rc.completion_id = cs.completion_id AND rc.run_id = r.id
           WHERE r.id = $1 ORDER BY rc.completion_id""",
        uuid.UUID(run_id),
    )
    assert [r["passed"] for r in passes] == [True, False]
    assert query(stack, "SELECT * FROM run_metrics WHERE run_id = $1", uuid.UUID(run_id)) == []
    scores = query(
        stack, "SELECT strategy, score, chosen FROM selections WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert scores and all(math.isnan(r["score"]) for r in scores)
    majority = next(r for r in scores if r["strategy"] == "coderm_majority")
    assert len(json.loads(majority["chosen"])) == 1  # the passing solution is still chosen
