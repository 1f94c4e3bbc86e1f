"""sandbox/runner.py run as a plain subprocess (no Docker): verdict semantics only.

Outside a container the runner is not PID 1, so it does not do its per-job
kill-everything / scratch cleanup; containment is tested in
tests/integration/test_sandbox.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from services.executor import sandbox as driver
from services.executor.sandbox import AssertCheck, AssertJob, UnittestJob, parse_output
from shared.enums import Outcome

RUNNER = Path(__file__).resolve().parents[2] / "sandbox" / "runner.py"

DRIVER = (
    "\n\nimport io, unittest\n"
    "result = unittest.TextTestRunner(stream=io.StringIO())"
    ".run(unittest.TestLoader().loadTestsFromTestCase(T))\n"
)
TEST = (
    "import unittest\n"
    "class T(unittest.TestCase):\n"
    "    def test_a(self):\n        self.assertEqual(f(1), 2)\n"
    "    def test_b(self):\n        self.assertEqual(f(2), 3)\n"
)


def run(jobs: list[UnittestJob | AssertJob]) -> dict[str, driver.JobResult]:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(RUNNER)],
        input=driver.encode_batch(jobs),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return parse_output(proc.stdout, driver.result_keys(jobs))


def ut(key: str, solution: str, limit: float = 1.0) -> UnittestJob:
    return UnittestJob(key, solution + "\n\n" + TEST + DRIVER, limit, 2 * limit)


def test_unittest_verdicts() -> None:
    results = run(
        [
            ut("pass", "def f(x): return x + 1"),
            ut("fail", "def f(x): return x"),
            ut("half", "def f(x): return 2 if x == 1 else 0"),
            ut("error", "def f(x) return x"),
            UnittestJob("no_result", "def f(x): return x + 1\n\n" + TEST, 1.0, 2.0),
            ut("timeout", "while True: pass"),
            ut("crash", "import os\nos._exit(0)"),
            ut("exit", "import sys\nsys.exit(0)"),
            ut("after", "def f(x): return x + 1"),
        ]
    )
    outcomes = {k: r.outcome for k, r in results.items()}
    assert outcomes == {
        "pass": Outcome.PASS,
        "fail": Outcome.FAIL,
        "half": Outcome.FAIL,
        "error": Outcome.ERROR,
        "no_result": Outcome.ERROR,
        "timeout": Outcome.TIMEOUT,
        "crash": Outcome.CRASH,
        "exit": Outcome.CRASH,
        "after": Outcome.PASS,
    }
    assert (results["pass"].tests_run, results["pass"].tests_passed) == (2, 2)
    assert (results["half"].tests_run, results["half"].tests_passed) == (2, 1)


def test_asserts_continue_after_timeout_and_crash() -> None:
    checks = tuple(
        AssertCheck(f"c{i}", code)
        for i, code in enumerate(
            [
                "assert f(1) == 2",
                "while True: pass",
                "assert f(2) == 3",
                "import os; os._exit(1)",
                "assert f(2) == 4",
            ]
        )
    )
    results = run([AssertJob("a", "def f(x): return x + 1", checks, 0.3, 2.0)])
    assert [results[f"c{i}"].outcome for i in range(5)] == [
        Outcome.PASS,
        Outcome.TIMEOUT,
        Outcome.PASS,
        Outcome.CRASH,
        Outcome.FAIL,
    ]


def test_bad_job_does_not_stop_the_batch() -> None:
    payload: dict[str, Any] = {
        "jobs": [
            {"kind": "nonsense", "key": "x"},
            {"kind": "unittest", "key": "y"},  # no code
            {"kind": "unittest", "key": "z", "code": "def f(x): return x + 1\n\n" + TEST + DRIVER},
        ]
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(RUNNER)],
        input=_encode(payload),
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(line.get("key"), line.get("outcome")) for line in lines[:3]] == [
        ("x", "sandbox_error"),
        ("y", "sandbox_error"),
        ("z", "pass"),
    ]
    assert lines[3] == {"done": True, "results": 3}


def _encode(batch: dict[str, Any]) -> bytes:
    data = zlib.compress(json.dumps(batch).encode())
    return driver._MAGIC + driver._HEADER.pack(len(data)) + data


def test_garbage_input_exits_non_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(RUNNER)], input=b"hello", capture_output=True, timeout=60
    )
    assert proc.returncode != 0
    assert proc.stdout == b""


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"", "end marker"),
        (b'{"done": true, "results": 0}\n', "lacks"),
        (b"not json\n", "unparsable"),
    ],
)
def test_parse_output_rejects_incomplete_output(stdout: bytes, message: str) -> None:
    with pytest.raises(driver.SandboxError, match=message):
        parse_output(stdout, ["k"])


def test_parse_output_duplicate_key_takes_the_worse_outcome() -> None:
    line = '{{"key": "k", "outcome": "{}", "tests_run": 1, "tests_passed": 1}}\n'
    out = (line.format("pass") + line.format("fail") + '{"done": true}\n').encode()
    assert parse_output(out, ["k"])["k"].outcome == Outcome.FAIL


def test_assert_timeouts_interrupt_in_process_and_kill_only_when_ignored() -> None:
    """A looping check is interrupted by its own alarm and the worker (with its state)
    carries on; a check that ignores the alarm is killed from outside and a fresh
    worker re-runs the setup for the next check."""
    checks = [
        "state.append(1)",
        "while True: pass",
        "assert state == [1]",
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass",
        "assert state == []",
    ]
    job = AssertJob(
        "a",
        "state = []",
        tuple(AssertCheck(f"c{i}", code) for i, code in enumerate(checks)),
        0.2,
        3.0,
    )
    results = run([job])
    outcomes = [results[f"c{i}"].outcome for i in range(len(checks))]
    assert outcomes == [Outcome.PASS, Outcome.TIMEOUT, Outcome.PASS, Outcome.TIMEOUT, Outcome.PASS]
    assert "exceeded" in (results["c3"].detail or "")
