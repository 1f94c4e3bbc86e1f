"""Differential tests of CodeRM's pair files: crafted pairs in exactly the shape CodeRM's
``evaluation/evaluate.py`` writes (``{task_id, sol_id, ut_id, code}``, ``code`` = solution
+ two newlines + a test wrapped as ``preprocess/extract_unit_test.py`` wraps it), with
the verdicts CodeRM's executor gives written down by hand from how it runs a pair (the
module executed with ``unittest``, ``output`` and ``locals_dict`` as its only globals,
pass iff ``locals_dict['result'].wasSuccessful()`` within 1 s). ``coderm exec-pairs``
must give those verdicts, and so must the baseline with CodeRM's execution model
(``bench/reference_executor.py``), which the benchmark compares against.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.reference_executor import run_pairs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-c", "from services.cli.app import main; main()", "exec-pairs"]

#: The driver CodeRM's extract_unit_test.py appends to every test (its UNITTEST_FORMAT).
DRIVER = (
    "\n\nsuite = unittest.TestLoader().loadTestsFromTestCase({name})\n"
    "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
    "result = runner.run(suite)\n"
    "locals_dict['result'] = result\n"
)

ADD = "def add(a, b):\n    return a + b"
TEST_ADD = (
    "import unittest\n"
    "\nclass TestAdd(unittest.TestCase):\n"
    "    def test_small(self):\n"
    "        self.assertEqual(add(2, 3), 5)\n"
    "    def test_negative(self):\n"
    "        self.assertEqual(add(-2, -3), -5)"
)


def wrapped(code: str, name: str = "TestAdd") -> str:
    """A test as CodeRM's extract_unit_test.py leaves it."""
    return code.rstrip("\n") + DRIVER.format(name=name)


#: (case, solution, wrapped test, CodeRM's verdict)
CASES: list[tuple[str, str, str, str]] = [
    ("correct solution", ADD, wrapped(TEST_ADD), "pass"),
    ("wrong solution", "def add(a, b):\n    return a - b", wrapped(TEST_ADD), "fail"),
    (
        "no import unittest in the test (it is injected)",
        ADD,
        wrapped(TEST_ADD.replace("import unittest\n", "")),
        "pass",
    ),
    ("solution binds output", f"output = []\n{ADD}", wrapped(TEST_ADD), "fail"),
    ("solution binds locals_dict", f"locals_dict = {{}}\n{ADD}", wrapped(TEST_ADD), "fail"),
    (
        "a __main__ block does not run (no __name__ in the globals)",
        f"{ADD}\nif __name__ == '__main__':\n    raise SystemExit(1)",
        wrapped(TEST_ADD),
        "pass",
    ),
    (
        "only a module-level result (another tool's wrapping)",
        ADD,
        TEST_ADD + "\n\nresult = unittest.TextTestRunner(stream=output).run("
        "unittest.TestLoader().loadTestsFromTestCase(TestAdd))\n",
        "fail",
    ),
    (
        "a class without test methods",
        ADD,
        wrapped(
            "import unittest\n\nclass TestNothing(unittest.TestCase):\n    pass", "TestNothing"
        ),
        "pass",
    ),
    (
        "numpy in the test",
        ADD,
        wrapped(
            "import unittest\nimport numpy as np\n"
            "\nclass TestAdd(unittest.TestCase):\n"
            "    def test_arrays(self):\n"
            "        np.testing.assert_array_equal(add(np.arange(3), np.ones(3)), [1, 2, 3])"
        ),
        "pass",
    ),
    (
        "a solution that loops",
        "def add(a, b):\n    while True:\n        pass",
        wrapped(TEST_ADD),
        "fail",
    ),
    (
        "a test that exits the process",
        ADD,
        wrapped(TEST_ADD.replace("self.assertEqual(add(2, 3), 5)", "raise SystemExit(0)")),
        "fail",
    ),
    (
        "non-ASCII text and prints",
        f"{ADD}\nprint('héllo, 世界' * 1000)",
        wrapped(TEST_ADD.replace("test_small", "test_ümlaut")),
        "pass",
    ),
]


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cases as a pair file, written the way evaluate.py writes it."""
    path = tmp_path_factory.mktemp("coderm-ref") / "sol_ut.jsonl"
    with path.open("w", encoding="UTF-8") as fp:
        for ut_id, (_, solution, test, _) in enumerate(CASES):
            code = solution + "\n\n" + test
            line = {"task_id": "HumanEval/0", "sol_id": 0, "ut_id": ut_id, "code": code}
            fp.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def test_exec_pairs_gives_coderms_verdicts(pair_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.jsonl"
    proc = subprocess.run(
        [*COMMAND, "--input", str(pair_file), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    got = {case: r["result"] for (case, *_), r in zip(CASES, results, strict=True)}
    assert got == {case: verdict for case, _, _, verdict in CASES}


def test_strict_globals_reject_coderms_wrapping(pair_file: Path, tmp_path: Path) -> None:
    """Our own globals read a module-level ``result``: CodeRM's tests write theirs into
    ``locals_dict``, which then does not exist, so every pair fails (why exec-pairs
    defaults to CodeRM's globals)."""
    out = tmp_path / "strict.jsonl"
    proc = subprocess.run(
        [*COMMAND, "--input", str(pair_file), "--output", str(out), "--profile", "strict"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert results and all(r["result"] == "fail" for r in results)


def test_the_baseline_model_gives_the_same_verdicts(pair_file: Path) -> None:
    codes = [json.loads(line)["code"] for line in pair_file.read_text("utf-8").splitlines()]
    verdicts = ["pass" if r.passed else "fail" for r in run_pairs(codes)]
    assert dict(zip([c[0] for c in CASES], verdicts, strict=True)) == {
        case: verdict for case, _, _, verdict in CASES
    }
