"""CodeT assert jobs: a forked worker runs the setup once and the checks in order,
a fresh worker taking over after a check that timed out or killed it.
"""

from __future__ import annotations

import builtins
import functools
import os
import signal
import time

from .common import (
    CRASH,
    DETAIL_CHARS,
    ERROR,
    FAIL,
    MODULE_NAME,
    PASS,
    TIMEOUT,
    JsonDict,
    Limits,
    describe_exception,
    describe_status,
)
from .containment import MessageReader, enter_child, fork_child, reap_child, send_message
from .output import Output


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class CheckTimeout(BaseException):
    """Raised inside a check by its own alarm (CodeT's ``time_limit``)."""


def _raise_check_timeout(_signum: int, _frame: object) -> None:
    raise CheckTimeout


def _assert_worker(
    setup: str, checks: list[str], start: int, limit: float, fd: int, limits: Limits
) -> None:
    enter_child(fd, limits, None)
    out = 3
    ns: JsonDict = {"__name__": MODULE_NAME, "__builtins__": builtins}
    t0 = time.perf_counter()
    try:
        exec(compile(setup, "<setup>", "exec"), ns)
    except SystemExit as exc:
        send_message(out, {"setup": CRASH, "detail": f"SystemExit({exc.code!r})"[:DETAIL_CHARS]})
        return
    except BaseException as exc:
        send_message(out, {"setup": ERROR, "detail": describe_exception(exc)})
        return
    send_message(out, {"setup": "ok", "ms": _ms(t0)})
    for i in range(start, len(checks)):
        t = time.perf_counter()
        detail: str | None = None
        try:
            signal.signal(signal.SIGALRM, _raise_check_timeout)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                exec(compile(checks[i], "<check>", "exec"), ns)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            outcome = PASS
        except CheckTimeout:
            outcome, detail = TIMEOUT, f"interrupted at {limit:g} s"
        except AssertionError as exc:
            outcome, detail = FAIL, describe_exception(exc)
        except SystemExit as exc:
            outcome, detail = CRASH, f"SystemExit({exc.code!r})"[:DETAIL_CHARS]
        except BaseException as exc:
            outcome, detail = ERROR, describe_exception(exc)
        ms = _ms(t)
        if ms > limit * 1000.0:
            outcome, detail = TIMEOUT, f"finished after {ms:.0f} ms"
        send_message(out, {"i": i, "outcome": outcome, "ms": ms, "detail": detail})


def _setup_failure(msg: JsonDict | str, setup_limit: float) -> tuple[str, str] | None:
    """Why the worker's setup failed, from its first message, or None if it worked."""
    if msg == MessageReader.TIMEOUT:
        return TIMEOUT, f"setup exceeded {setup_limit:g} s"
    if not isinstance(msg, dict):
        return CRASH, "setup: worker died"
    if msg.get("setup") != "ok":
        outcome = msg.get("setup")
        return (outcome if outcome in (ERROR, CRASH) else ERROR), f"setup: {msg.get('detail')}"
    if float(msg.get("ms", 0.0)) > setup_limit * 1000.0:
        return TIMEOUT, f"setup exceeded {setup_limit:g} s"
    return None


CHECK_OUTCOMES = (PASS, FAIL, ERROR, TIMEOUT, CRASH)


def _run_checks(
    pid: int,
    reader: MessageReader,
    keys: list[str],
    i: int,
    limit: float,
    grace: float,
    out: Output,
) -> int:
    """Collect the worker's check reports from check ``i`` on; return the next index.

    Stops after the first check that times out or kills the worker (it is recorded).
    """
    while i < len(keys):
        t = time.monotonic()
        msg = reader.next(t + limit + grace)
        if isinstance(msg, dict) and msg.get("i") == i and msg.get("outcome") in CHECK_OUTCOMES:
            detail = msg.get("detail")
            out.result(
                keys[i],
                str(msg["outcome"]),
                duration_ms=float(msg.get("ms", 0.0)),
                detail=None if detail is None else str(detail),
            )
            i += 1
            continue
        wall_ms = (time.monotonic() - t) * 1000.0
        if msg == MessageReader.TIMEOUT:
            out.result(keys[i], TIMEOUT, duration_ms=wall_ms, detail=f"exceeded {limit:g} s")
        else:
            detail = describe_status(reap_child(pid))
            out.result(keys[i], CRASH, duration_ms=wall_ms, detail=detail)
        return i + 1
    return i


def run_asserts(job: JsonDict, limits: Limits, out: Output) -> None:
    keys = [str(c["key"]) for c in job["checks"]]
    codes = [str(c["code"]) for c in job["checks"]]
    setup = str(job["setup"])
    limit = float(job.get("time_limit_s", 0.5))
    setup_limit = float(job.get("setup_time_limit_s", 3.0))
    i = 0
    while i < len(keys):
        t0 = time.monotonic()
        pid, rfd = fork_child(
            functools.partial(_assert_worker, setup, codes, i, limit, limits=limits)
        )
        reader = MessageReader(rfd)
        try:
            failure = _setup_failure(reader.next(t0 + setup_limit + limits.grace_s), setup_limit)
            if failure is not None:
                outcome, detail = failure
                if outcome == CRASH:
                    detail = f"{detail} ({describe_status(reap_child(pid))})"
                for k in keys[i:]:
                    out.result(k, outcome, detail=detail)
                return
            i = _run_checks(pid, reader, keys, i, limit, limits.grace_s, out)
        finally:
            reap_child(pid)
            os.close(rfd)
