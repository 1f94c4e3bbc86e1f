"""sandbox/runner.py run as a plain subprocess (no Docker): verdict semantics,
scheduling and the in-process guards.

Outside a container the runner is not PID 1, so it does not do its per-job
kill-everything / scratch cleanup; containment is tested in
tests/integration/test_sandbox.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sandbox.client import framing as driver
from sandbox.client.jobs import (
    AssertCheck,
    AssertJob,
    Job,
    UnittestJob,
    pair_job,
    result_keys,
)
from sandbox.client.results import JobResult, SandboxError
from sandbox.coderm_runner import common as runner_common
from services.executor.expected_outputs import CanonicalRun, parse_results
from services.executor.ground_truth import outputs_label
from shared.core.oracle import Expected
from shared.core.profiles import AdaptiveLimit
from shared.enums import Outcome
from tests.samples import doubling_oracle

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


def run(jobs: Sequence[Job], parallel: int | None = None) -> dict[str, JobResult]:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(RUNNER)],
        input=driver.encode_batch(jobs, parallel),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return driver.parse_output(proc.stdout, result_keys(jobs))


def test_driver_and_runner_agree_on_the_wire_format() -> None:
    """The runner ships alone in the image, so both sides define the input's framing;
    they must be the same bytes (a mismatch would make every batch unreadable)."""
    assert driver.MAGIC == runner_common.MAGIC
    assert driver.HEADER.format == runner_common.HEADER.format


def outcomes(results: dict[str, JobResult]) -> dict[str, Outcome]:
    return {k: r.outcome for k, r in results.items()}


def summary(results: dict[str, JobResult]) -> str:
    return "\n".join(f"{k}: {r.outcome} {r.duration_ms} {r.detail}" for k, r in results.items())


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
    assert lines[3]["done"] is True
    assert lines[3]["results"] == 3


def _encode(batch: dict[str, Any]) -> bytes:
    data = zlib.compress(json.dumps(batch).encode())
    return driver.MAGIC + driver.HEADER.pack(len(data)) + data


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
        (b'[1]\n{"done": true}\n', "not an object"),
        (b'{"key": "k"}\n{"done": true}\n', "outcome"),
        (b'{"key": "k", "outcome": "maybe"}\n{"done": true}\n', "maybe"),
    ],
)
def test_parse_output_rejects_incomplete_output(stdout: bytes, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        driver.parse_output(stdout, ["k"])


def test_parse_output_duplicate_key_takes_the_worse_outcome() -> None:
    line = '{{"key": "k", "outcome": "{}", "tests_run": 1, "tests_passed": 1}}\n'
    out = (line.format("pass") + line.format("fail") + '{"done": true}\n').encode()
    assert driver.parse_output(out, ["k"])["k"].outcome == Outcome.FAIL


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


GOOD = "def f(x):\n    return x + 1\n"
WRONG = "def f(x):\n    return x\n"
PAIR_TEST = TEST + DRIVER

# (solution, test) pairs whose split execution must equal running the whole module
SPLIT_CASES: dict[str, tuple[str, str]] = {
    "pass": (GOOD, PAIR_TEST),
    "fail": (WRONG, PAIR_TEST),
    "solution_syntax": ("def f(x) return x", PAIR_TEST),
    "solution_raises": (GOOD + "raise RuntimeError('at import')\n", PAIR_TEST),
    "solution_name_error": (GOOD + "T.extra = 1\n", PAIR_TEST),  # T is defined by the test
    "solution_exits": (GOOD + "import sys\nsys.exit(0)\n", PAIR_TEST),
    "solution_os_exit": (GOOD + "import os\nos._exit(0)\n", PAIR_TEST),
    "solution_loops": ("while True:\n    pass\n", PAIR_TEST),
    "test_syntax": (GOOD, "import unittest\nclass T(unittest.TestCase)\n" + DRIVER),
    # the parts compile only together: an open string closed by the test
    "healed_string": (GOOD + 'NOTE = """', '"""\n' + PAIR_TEST),
    # the test's first line continues the solution's last function
    "continued_block": ("def f(x):\n    y = x", "    return y + 1\n" + PAIR_TEST),
    # the solution's future import changes how the test part is compiled
    "future_in_solution": (
        "from __future__ import annotations\n" + GOOD,
        "def helper(a: Undefined) -> None:\n    pass\n" + PAIR_TEST,
    ),
    "future_in_test": (GOOD, "from __future__ import annotations\n" + PAIR_TEST),
}


def test_split_pairs_give_the_verdicts_of_whole_modules() -> None:
    """Compiling solution and test once each, and failing a solution's pairs without
    running them when the solution fails alone, gives the verdict of running each pair's
    whole module in a fresh process."""
    split: list[UnittestJob | AssertJob] = []
    whole: list[UnittestJob | AssertJob] = []
    for name, (solution, test) in SPLIT_CASES.items():
        limit = 0.3 if name == "solution_loops" else 1.0
        for copy in range(3):  # the probe and two pairs that may skip running
            job = pair_job(f"{name}/{copy}", solution, test + f"#{copy}\n", limit, 2 * limit)
            split.append(job)
            whole.append(UnittestJob(job.key, job.code, limit, 2 * limit))
    split_results, whole_results = run(split, parallel=3), run(whole, parallel=3)
    assert outcomes(split_results) == outcomes(whole_results), summary(split_results)
    assert outcomes(split_results)["pass/0"] is Outcome.PASS
    assert outcomes(split_results)["healed_string/1"] is Outcome.PASS
    assert outcomes(split_results)["continued_block/2"] is Outcome.PASS
    assert outcomes(split_results)["future_in_solution/0"] is Outcome.PASS
    assert outcomes(split_results)["future_in_test/0"] is Outcome.ERROR
    for name in ("solution_raises", "solution_exits", "solution_loops"):
        skipped = [split_results[f"{name}/{i}"].detail or "" for i in (1, 2)]
        assert all("solution alone" in d for d in skipped), summary(split_results)


def test_texts_reach_the_pairs_unchanged() -> None:
    """The texts go to the zygote through a memory file: non-ASCII text, a text too
    large for the zygote to compile (the pair's process compiles it) and a lone
    surrogate (which no module can hold) keep their verdicts."""
    padding = "# " + "x" * 70 + "\n"
    large = GOOD + padding * (300_000 // len(padding))
    unicode = 'NAME = "héllo wörld ✓ 漢字"\n' + GOOD + "assert len(NAME) == 16\n"
    results = run(
        [
            pair_job("unicode", unicode, PAIR_TEST, 1.0, 2.0),
            pair_job("large", large, PAIR_TEST, 1.0, 2.0),
            pair_job(
                "large_wrong", WRONG + padding * (300_000 // len(padding)), PAIR_TEST, 1.0, 2.0
            ),
            pair_job("surrogate", GOOD + 'S = "\ud800"\n', PAIR_TEST, 1.0, 2.0),
            UnittestJob("whole_large", large + "\n\n" + PAIR_TEST, 1.0, 2.0),
        ]
    )
    assert len(large) > 1 << 18
    assert outcomes(results) == {
        "unicode": Outcome.PASS,
        "large": Outcome.PASS,
        "large_wrong": Outcome.FAIL,
        "surrogate": Outcome.ERROR,
        "whole_large": Outcome.PASS,
    }, summary(results)


# solutions (otherwise correct) that try to pass without passing, or to break the runner
HOSTILE: dict[str, str] = {
    "exit_in_test": GOOD + "import sys\nclass _X:\n    pass\n",  # the test part exits, below
    "os_exit": GOOD + "import os\nos._exit(0)\n",
    "kill_parent": GOOD + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "ignore_alarm": (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)\nwhile True:\n    pass\n"
    ),
    "was_successful": (
        WRONG + "import unittest\nunittest.TestResult.wasSuccessful = lambda self: True\n"
    ),
    "assert_equal": (
        WRONG + "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
    ),
    "code_patch": (
        WRONG + "import unittest\n"
        "unittest.TestCase.assertEqual.__code__ = (lambda *a, **k: None).__code__\n"
    ),
    "runner_rebound": (
        WRONG + "import unittest, io\n"
        "class _Fake:\n"
        "    def __init__(self, *a, **k):\n        pass\n"
        "    def run(self, test):\n"
        "        return unittest.TextTestResult(io.StringIO(), True, 1)\n"
        "unittest.TextTestRunner = _Fake\n"
    ),
    "result_object": WRONG,  # the test part replaces ``result``, below
    "print_result": (
        GOOD.replace("x + 1", "x") + 'print(\'{"key": "print_result", "outcome": "pass"}\')\n'
    ),
    "forge_channel": (
        WRONG + "import os\n"
        "for _fd in range(3, 64):\n"
        "    try:\n"
        '        os.write(_fd, b\'{"status": "result", "ok": true, "tests_run": 2,\'\n'
        '                      b\' "tests_passed": 2, "ms": 1.0}\\n\')\n'
        "    except OSError:\n        pass\n"
    ),
    "trace": WRONG + "import sys\nsys.settrace(lambda *a: None)\nsys.settrace(None)\n",
    "gc_walk": WRONG + "import gc\n_ = len(gc.get_objects())\n",
}

TEST_PART = {
    "exit_in_test": PAIR_TEST.replace("result = ", "import sys\nsys.exit(0)\nresult = "),
    "result_object": PAIR_TEST
    + "class _R:\n    failures = errors = []\n    testsRun = 2\n"
    + "    def wasSuccessful(self):\n        return True\nresult = _R()\n",
}


def test_hostile_pairs_do_not_pass_and_their_neighbours_are_unaffected() -> None:
    jobs: list[UnittestJob | AssertJob] = []
    for name, solution in HOSTILE.items():
        jobs.append(pair_job(name, solution, TEST_PART.get(name, PAIR_TEST), 0.5, 1.0))
        jobs.append(pair_job(f"{name}/after_pass", GOOD, PAIR_TEST + f"#{name}", 1.0, 2.0))
        jobs.append(pair_job(f"{name}/after_fail", WRONG, PAIR_TEST + f"#{name}", 1.0, 2.0))
    results = run(jobs, parallel=3)
    for name in HOSTILE:
        assert results[name].outcome is not Outcome.PASS, summary(results)
        assert results[f"{name}/after_pass"].outcome is Outcome.PASS, summary(results)
        assert results[f"{name}/after_fail"].outcome is Outcome.FAIL, summary(results)
    got = outcomes(results)
    assert got["exit_in_test"] is Outcome.CRASH
    assert got["os_exit"] is Outcome.CRASH
    assert got["kill_parent"] is Outcome.CRASH
    assert got["ignore_alarm"] is Outcome.TIMEOUT
    assert got["forge_channel"] is Outcome.FAIL  # unsigned messages are dropped
    assert "signal outside the pair" in (results["kill_parent"].detail or "")
    assert "assertEqual" in (results["assert_equal"].detail or "")
    assert "patched" in (results["code_patch"].detail or "")
    assert "TextTestRunner" in (results["runner_rebound"].detail or "")


def _barrier_pair(key: str, directory: Path, wait_for: str, then_create: str) -> UnittestJob:
    """A pair that waits (sleeping) until a file exists, then creates another."""
    solution = (
        GOOD + "import os, time\n"
        f"_deadline = time.monotonic() + 20\n"
        f"while not os.path.exists({str(directory / wait_for)!r}):\n"
        "    assert time.monotonic() < _deadline, 'never released'\n"
        "    time.sleep(0.01)\n"
        f"open({str(directory / then_create)!r}, 'w').close()\n"
    )
    return pair_job(key, solution, PAIR_TEST + f"#{key}", 30.0, 30.0)


def test_sleeping_pairs_do_not_hold_the_cpus(tmp_path: Path) -> None:
    """Four pairs that only sleep until a fifth one has run: with 6 pairs at once on
    this host they all finish, so sleepers did not keep the fifth from running."""
    jobs: list[UnittestJob | AssertJob] = [
        _barrier_pair(f"sleeper{i}", tmp_path, "released", f"sleeper{i}.done") for i in range(4)
    ]
    busy = (
        GOOD + "import os, time\n"
        "_t = time.process_time()\n"
        "while time.process_time() - _t < 0.05:\n    pass\n"
        f"open({str(tmp_path / 'released')!r}, 'w').close()\n"
    )
    jobs.append(pair_job("worker", busy, PAIR_TEST + "#worker", 30.0, 30.0))
    results = run(jobs, parallel=6)
    assert all(r.outcome is Outcome.PASS for r in results.values()), summary(results)


def test_waiting_for_a_cpu_does_not_count_against_the_limit() -> None:
    """Eight pairs that each need 0.4 s of CPU, all at once: on a couple of cores each
    takes well over a second of wall time, yet none exceeds its 1 s limit."""
    busy = (
        GOOD + "import time\n"
        "_t = time.process_time()\n"
        "while time.process_time() - _t < 0.4:\n    pass\n"
    )
    jobs: list[UnittestJob | AssertJob] = [
        pair_job(f"busy{i}", busy, PAIR_TEST + f"#{i}", 1.0, 2.0) for i in range(8)
    ]
    results = run(jobs, parallel=8)
    assert all(r.outcome is Outcome.PASS for r in results.values()), summary(results)


def test_adaptive_limit_follows_the_other_solutions() -> None:
    """After three fast solutions of a test, a slow one gets max(floor, 5 x their
    slowest): it times out, where the fixed 1 s limit lets it pass."""
    slow = GOOD + "import time\ntime.sleep(0.5)\n"
    adaptive = AdaptiveLimit(factor=5, floor_s=0.05, min_samples=3)
    fast = [f"{GOOD}# solution {i}\n" for i in range(3)]

    def jobs(mode: AdaptiveLimit | None) -> list[UnittestJob | AssertJob]:
        made: list[UnittestJob | AssertJob] = [
            pair_job(f"fast{i}", s, PAIR_TEST, 1.0, 2.0, mode) for i, s in enumerate(fast)
        ]
        return [*made, pair_job("slow", slow, PAIR_TEST, 1.0, 2.0, mode)]

    fixed, adapted = run(jobs(None), parallel=1), run(jobs(adaptive), parallel=1)
    assert fixed["slow"].outcome is Outcome.PASS
    assert adapted["slow"].outcome is Outcome.TIMEOUT, summary(adapted)
    assert all(adapted[f"fast{i}"].outcome is Outcome.PASS for i in range(3))


def _sibling_killer(key: str, directory: Path, targets: str) -> UnittestJob:
    """A pair that SIGKILLs its siblings (``targets='siblings'``) or its parent, with
    the kill command (not ``os.kill``, which the runner refuses), then fails."""
    solution = (
        GOOD + "import os, subprocess, time\n"
        f"_deadline = time.monotonic() + 20\n"
        f"while not os.path.exists({str(directory / 'victim.ready')!r}):\n"
        "    assert time.monotonic() < _deadline\n"
        "    time.sleep(0.01)\n"
        "_me, _parent = os.getpid(), os.getppid()\n"
        "_pids = [_parent] if " + repr(targets) + " == 'parent' else [\n"
        "    int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != _me\n"
        "    and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1] == str(_parent)\n"
        "]\n"
        "subprocess.run(['kill', '-9', *map(str, _pids)], check=False)\n"
        "raise RuntimeError('done killing')\n"
    )
    return pair_job(key, solution, PAIR_TEST + f"#{key}", 30.0, 30.0)


@pytest.mark.parametrize("targets", ["siblings", "parent"])
def test_pairs_killed_from_outside_run_again_alone(tmp_path: Path, targets: str) -> None:
    """A victim killed by a sibling (or losing the process that forked it) is run again
    on its own at the end and gets its own verdict; the killer does not pass."""
    victim = (
        GOOD + "import os, time\n"
        f"if not os.path.exists({str(tmp_path / 'victim.ready')!r}):\n"
        f"    open({str(tmp_path / 'victim.ready')!r}, 'w').close()\n"
        "    time.sleep(20)\n"
    )
    jobs: list[UnittestJob | AssertJob] = [
        pair_job("victim", victim, PAIR_TEST + "#victim", 30.0, 30.0),
        _sibling_killer("killer", tmp_path, targets),
        pair_job("after_pass", GOOD, PAIR_TEST + "#after", 1.0, 2.0),
        pair_job("after_fail", WRONG, PAIR_TEST + "#after", 1.0, 2.0),
    ]
    results = run(jobs, parallel=2)
    assert results["victim"].outcome is Outcome.PASS, summary(results)
    assert results["killer"].outcome is not Outcome.PASS, summary(results)
    assert results["after_pass"].outcome is Outcome.PASS, summary(results)
    assert results["after_fail"].outcome is Outcome.FAIL, summary(results)


# ---------------------------------------------------------------- reference globals


def test_driver_and_runner_agree_on_the_reference_globals_name() -> None:
    assert driver.REFERENCE_GLOBALS == runner_common.REFERENCE_GLOBALS


CODERM_CLASS = (
    "class TestF(unittest.TestCase):\n"
    "    def test_a(self):\n        self.assertEqual(f(1), 2)\n"
    "    def test_b(self):\n        self.assertEqual(f(2), 3)\n"
)
# how CodeRM wraps a generated test class
CODERM_TAIL = (
    "\nsuite = unittest.TestLoader().loadTestsFromTestCase(TestF)\n"
    "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
    "result = runner.run(suite)\n"
    "locals_dict['result'] = result\n"
)
CODERM_TEST = "import unittest\n" + CODERM_CLASS + CODERM_TAIL
# our strict wrapping of the same class: a module-level ``result`` only
STRICT_TEST = (
    "import io\nimport unittest\n" + CODERM_CLASS + "\nsuite = unittest.TestLoader()"
    ".loadTestsFromTestCase(TestF)\n"
    "result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=2).run(suite)\n"
)
EMPTY_CLASS_TEST = "import unittest\nclass TestF(unittest.TestCase):\n    pass\n" + CODERM_TAIL

# (solution, test) -> whether the pair passes in reference mode
REFERENCE_CASES: dict[str, tuple[str, str, bool]] = {
    "coderm_test": (GOOD, CODERM_TEST, True),
    "coderm_test_wrong": (WRONG, CODERM_TEST, False),
    "no_import_unittest": (GOOD, CODERM_CLASS + CODERM_TAIL, True),
    "output_rebound": (GOOD + "output = []\n", CODERM_TEST, False),
    "locals_dict_rebound": (GOOD + "locals_dict = {}\n", CODERM_TEST, False),
    "strict_wrapping": (GOOD, STRICT_TEST, False),
    "main_block_skipped": (
        GOOD + "if __name__ == '__main__':\n    raise SystemExit(1)\n",
        CODERM_TEST,
        True,
    ),
    "zero_methods": (GOOD, EMPTY_CLASS_TEST, True),
    "forged_result": (
        WRONG,
        CODERM_TEST
        + "class _R:\n    failures = errors = []\n    testsRun = 2\n"
        + "    def wasSuccessful(self):\n        return True\n"
        + "locals_dict['result'] = _R()\n",
        False,
    ),
    "forged_result_in_new_dict": (
        WRONG,
        CODERM_TEST + "locals_dict = {'result': unittest.TestResult()}\n",
        False,
    ),
    "was_successful_patched": (
        WRONG + "import unittest\nunittest.TestResult.wasSuccessful = lambda self: True\n",
        CODERM_TEST,
        False,
    ),
    "assert_equal_patched": (
        WRONG + "unittest.TestCase.assertEqual = lambda *a, **k: None\n",
        CODERM_TEST,
        False,
    ),
    "runner_rebound": (
        WRONG + "import io\n"
        "class _Fake:\n"
        "    def __init__(self, *a, **k):\n        pass\n"
        "    def run(self, test):\n"
        "        return unittest.TextTestResult(io.StringIO(), True, 1)\n"
        "unittest.TextTestRunner = _Fake\n",
        CODERM_TEST,
        False,
    ),
}


def _reference_jobs(reference: bool) -> list[UnittestJob | AssertJob]:
    return [
        pair_job(name, solution, test, 1.0, 2.0, reference_globals=reference)
        for name, (solution, test, _) in REFERENCE_CASES.items()
    ]


def test_reference_globals_give_coderm_executor_verdicts() -> None:
    """CodeRM's executor runs each module with exactly ``unittest``, ``output`` and
    ``locals_dict`` as globals and passes it iff ``locals_dict['result']`` (the dict it
    gave) was successful: the same verdicts here, without its forgeable
    ``wasSuccessful``."""
    results = run(_reference_jobs(True), parallel=3)
    got = {name: r.outcome is Outcome.PASS for name, r in results.items()}
    assert got == {name: ok for name, (_, _, ok) in REFERENCE_CASES.items()}, summary(results)
    assert (results["coderm_test"].tests_run, results["coderm_test"].tests_passed) == (2, 2)
    assert results["zero_methods"].tests_run == 0
    assert results["coderm_test_wrong"].outcome is Outcome.FAIL
    assert results["output_rebound"].outcome is Outcome.ERROR
    assert results["locals_dict_rebound"].outcome is Outcome.ERROR
    assert results["strict_wrapping"].outcome is Outcome.ERROR
    assert results["forged_result"].outcome is Outcome.ERROR
    assert "assertEqual" in (results["assert_equal_patched"].detail or "")


def test_strict_globals_keep_their_verdicts() -> None:
    """The same modules in the default (strict) namespace: our own wrapping passes;
    CodeRM's needs ``output`` and ``locals_dict``, which only the reference mode
    gives; a ``__main__`` block runs."""
    results = run(
        [
            pair_job("strict_wrapping", GOOD, STRICT_TEST, 1.0, 2.0),
            pair_job("coderm_test", GOOD, CODERM_TEST, 1.0, 2.0),
            pair_job(
                "main_block",
                GOOD + "if __name__ == '__main__':\n    raise SystemExit(1)\n",
                STRICT_TEST,
                1.0,
                2.0,
            ),
        ]
    )
    assert outcomes(results) == {
        "strict_wrapping": Outcome.PASS,
        "coderm_test": Outcome.ERROR,
        "main_block": Outcome.PASS,
    }, summary(results)


def test_a_solution_failing_in_one_mode_does_not_fail_its_pairs_in_the_other() -> None:
    """Pairs of the same solution text in both modes in one batch: the strict probe's
    failure (no ``output`` there) does not fail the reference pairs without running."""
    solution = GOOD + "assert isinstance(locals_dict, dict)\n"
    jobs: list[UnittestJob | AssertJob] = [
        pair_job(f"strict{i}", solution, STRICT_TEST + f"#{i}", 1.0, 2.0) for i in range(2)
    ]
    jobs += [
        pair_job(f"ref{i}", solution, CODERM_TEST + f"#{i}", 1.0, 2.0, reference_globals=True)
        for i in range(2)
    ]
    results = run(jobs, parallel=1)
    assert outcomes(results) == {
        "strict0": Outcome.ERROR,
        "strict1": Outcome.ERROR,
        "ref0": Outcome.PASS,
        "ref1": Outcome.PASS,
    }, summary(results)


def test_unknown_globals_mode_is_a_sandbox_error() -> None:
    payload: dict[str, Any] = {
        "jobs": [
            {"kind": "unittest", "key": "x", "code": GOOD, "globals": "nonsense"},
            {
                "kind": "unittest",
                "key": "y",
                "code": GOOD + "\n\n" + CODERM_TEST,
                "globals": runner_common.REFERENCE_GLOBALS,
            },
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
    assert {line.get("key"): line.get("outcome") for line in lines[:2]} == {
        "x": "sandbox_error",
        "y": "pass",
    }


def test_every_job_kind_runs_in_one_batch() -> None:
    """Unittest pairs, CodeT asserts, evalplus ground-truth checks and expected outputs
    travel in one framing and are dispatched by kind: the checks by the comparison code
    shipped with the runner, the outputs computed by its own module."""
    label = outputs_label("f", doubling_oracle(base_ms=[1.0, 1.0], plus_ms=[1.0]))
    double = "def f(x):\n    return 2 * x\n"
    canonical = [
        CanonicalRun("T/ok", double, "f", doubling_oracle()),
        CanonicalRun("T/raises", "def f(x):\n    raise KeyError(x)\n", "f", doubling_oracle()),
        CanonicalRun("T/missing", "g = 1\n", "f", doubling_oracle()),
    ]
    jobs: list[Job] = [
        pair_job("pair", GOOD, PAIR_TEST, 2.0, 4.0),
        AssertJob("a", GOOD, (AssertCheck("a1", "assert f(1) == 2"),), 1.0, 3.0),
        label.job(1, double, 3.0),
        label.job(2, "def f(x):\n    return 2 * x if x < 3 else 0\n", 3.0),
        label.job(3, "def f(x):\n    return x\n", 3.0),
        *(run.job(30.0) for run in canonical),
    ]
    results = run(jobs)
    assert outcomes(results) == {
        "pair": Outcome.PASS,
        "a1": Outcome.PASS,
        "gb:1": Outcome.PASS,
        "g:1": Outcome.PASS,
        "gb:2": Outcome.PASS,
        "g:2": Outcome.FAIL,
        "gb:3": Outcome.FAIL,
        "g:3": Outcome.FAIL,  # the plus check runs whatever the base check gave
        "T/ok": Outcome.PASS,
        "T/raises": Outcome.ERROR,
        "T/missing": Outcome.ERROR,
    }, summary(results)
    assert "plus input 0: wrong output" in (results["g:2"].detail or "")
    expected = parse_results(results, canonical)
    ok = expected["T/ok"]
    assert isinstance(ok, Expected) and (ok.base, ok.plus) == ("[2, 4]", "[6]")
    assert expected["T/raises"] == "KeyError: 1"
    assert expected["T/missing"] == "KeyError: 'f'"
