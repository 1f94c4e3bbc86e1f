"""A baseline with the execution model of CodeRM's released executor, on the host.

As CodeRM's executor (``docker_source/main.py`` of RUCKBReasoning/CodeRM) runs each
(solution, test) pair: a fresh ``multiprocessing.Process`` per pair runs
``exec(code, globals)`` where the globals are exactly ``unittest`` (the module),
``output`` (a new ``io.StringIO``) and ``locals_dict`` (a new dict), under a 1 s
``SIGALRM`` (``setitimer``) limit raised as an exception inside the pair; the verdict is
``locals_dict.get('result').wasSuccessful()`` read from the dict that was injected, and
any exception (the result missing included) is a fail. The parent ``join``s the process
for 2 s and terminates it if it is still alive; pairs are handed to a pool of ``mp_num``
worker processes, 1,000 pairs at a time. The pair's output goes to the process's own
standard output and error (sent to ``/dev/null`` here, at the descriptor level, so that
``sys.stdout`` is the real stream as in CodeRM). This is our own code written to those
facts (no sandbox, no containment), used to measure speed and verdicts side by side.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import signal
import sys
import time
import unittest  # imported by CodeRM's executor too: pairs forked from it find it loaded
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from types import FrameType

CHUNK = 1000
assert unittest  # (kept for the fork, see the import)


class TimeoutException(Exception):
    """Raised in a pair by its alarm."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutException in this process after ``seconds`` of wall time."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutException("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass(frozen=True)
class ReferenceResult:
    """One pair's verdict: pass bit, time inside the pair's module (ms, None if it was
    killed from outside), whether the parent had to kill it."""

    passed: bool
    ms: float | None
    killed: bool


def _pair_process(
    code: str, passed: Synchronized[int], ms: Synchronized[float], limit: float
) -> None:
    output = io.StringIO()
    locals_dict: dict[str, object] = {}
    start = time.perf_counter()
    ok = False
    try:
        with time_limit(limit):
            exec(code, {"unittest": unittest, "output": output, "locals_dict": locals_dict})
        result = locals_dict.get("result")
        ok = bool(result.wasSuccessful())  # type: ignore[attr-defined]
    except Exception:
        ok = False
    ms.value = (time.perf_counter() - start) * 1000.0
    passed.value = 1 if ok else 0


def run_pair(code: str, limit: float = 1.0, join_s: float = 2.0) -> ReferenceResult:
    """One pair in a fresh process: exec under the alarm, join, kill if still alive."""
    passed = multiprocessing.Value("i", 0)
    ms = multiprocessing.Value("d", -1.0)
    process = multiprocessing.Process(target=_pair_process, args=(code, passed, ms, limit))
    process.start()
    process.join(join_s)
    killed = process.is_alive()
    if killed:
        process.terminate()
        process.join(0.1)
    if process.is_alive():
        process.kill()
        process.join()
    return ReferenceResult(bool(passed.value), None if ms.value < 0 else float(ms.value), killed)


def run_pairs(codes: Sequence[str], mp_num: int = 2, limit: float = 1.0) -> list[ReferenceResult]:
    """Every pair, ``CHUNK`` at a time through a pool of ``mp_num`` workers."""
    results: list[ReferenceResult] = []
    context = multiprocessing.get_context("fork")
    for start in range(0, len(codes), CHUNK):
        chunk = codes[start : start + CHUNK]
        with ProcessPoolExecutor(max_workers=mp_num, mp_context=context) as pool:
            results.extend(pool.map(run_pair, chunk, [limit] * len(chunk)))
    return results


def cores() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def main() -> int:
    """Modules from stdin (JSON list), verdicts to stdout (JSON list); what the pairs
    print goes to /dev/null."""
    codes = json.load(sys.stdin)
    answer = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    results = run_pairs([str(code) for code in codes])
    json.dump([[r.passed, r.ms, r.killed] for r in results], answer)
    answer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
