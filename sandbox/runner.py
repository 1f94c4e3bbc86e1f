"""Batch runner executed inside the sandbox container (stdlib only, Python 3.11).

Run as ``python3 -I -S /opt/coderm/runner.py`` by an unprivileged user, normally as
PID 1 of a container with a read-only root, a tmpfs ``/tmp`` and no network.

Input (stdin): ``MAGIC`` + 8-byte big-endian length + that many bytes of
zlib-compressed JSON ``{"jobs": [...], "limits": {...}}``. No EOF is needed.

Output (stdout): one JSON line per unittest job and per assert check::

    {"key", "outcome", "tests_run", "tests_passed", "duration_ms", "detail"}

then a final ``{"done": true, "results": N}`` line. Outcomes: pass, fail, error,
timeout, crash, sandbox_error (the runner itself failed on that job).

Job kinds:

- ``unittest`` (CodeRM): the code runs as one module in a process forked from this
  (warmed) runner. Pass iff it finished within ``time_limit_s`` and the module-level
  ``result`` (a ``unittest.TestResult``) ``wasSuccessful()``. The runner kills the
  child's process group at ``time_limit_s`` + a small grace (never later than
  ``kill_after_s``).
- ``asserts`` (CodeT): a forked worker execs ``setup`` once, then runs the checks in
  order in the same namespace, reporting each through a pipe. A check that overruns
  its limit or kills the worker gets timeout/crash; a fresh worker then continues
  with the next check.

Containment per child: own session/process group, stdin/stdout/stderr on /dev/null,
every other descriptor closed (children never hold the runner's stdout), rlimits on
address space, file size, core dumps and open files, oom_score_adj 1000 (the kernel's
OOM killer prefers the child over the runner). As PID 1 the runner also kills every
other process and empties /tmp and /dev/shm after each job.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
import unittest
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

# Modules candidate code commonly imports: importing them once here makes every fork
# cheaper. Failures are ignored (the image may lack some).
for _name in (
    "bisect",
    "collections",
    "copy",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "typing",
):
    with contextlib.suppress(Exception):
        __import__(_name)

MAGIC = b"CODERM1\n"
HEADER = struct.Struct(">Q")
MAX_INPUT_BYTES = 1 << 30
MAX_MESSAGE_BYTES = 1 << 16
DETAIL_CHARS = 300
MODULE_NAME = "__coderm_pair__"

PASS, FAIL, ERROR, TIMEOUT, CRASH, SANDBOX_ERROR = (
    "pass",
    "fail",
    "error",
    "timeout",
    "crash",
    "sandbox_error",
)

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    """Per-child resource limits; the batch's ``limits`` object overrides defaults."""

    address_space_mb: int = 2048
    file_size_mb: int = 16
    open_files: int = 256
    grace_s: float = 0.1

    @classmethod
    def from_json(cls, raw: object) -> Limits:
        if not isinstance(raw, dict):
            return cls()
        base = cls()
        return cls(
            address_space_mb=int(raw.get("address_space_mb", base.address_space_mb)),
            file_size_mb=int(raw.get("file_size_mb", base.file_size_mb)),
            open_files=int(raw.get("open_files", base.open_files)),
            grace_s=float(raw.get("grace_s", base.grace_s)),
        )


# --------------------------------------------------------------------------- helpers


def _truncate(text: str, limit: int = DETAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    try:
        return _truncate(f"{type(exc).__name__}: {exc}")
    except BaseException:  # a hostile __str__
        return _truncate(type(exc).__name__)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "worker vanished"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by signal {name}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"status {status}"


def _load_prctl() -> Callable[[int, int], int] | None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.prctl
    except Exception:
        return None

    def prctl(option: int, arg: int) -> int:
        return int(fn(option, arg, 0, 0, 0))

    return prctl


_PRCTL = _load_prctl()
PR_SET_DUMPABLE = 4
IS_INIT = os.getpid() == 1


def _enter_child(keep_fd: int, limits: Limits, cpu_s: int | None) -> None:
    """Confine a freshly forked child; ``keep_fd`` (its pipe end) becomes fd 3."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.dup2(keep_fd, 3)  # dup2 clears FD_CLOEXEC on the copy
    os.closerange(4, 1 << 20)
    if _PRCTL is not None:
        # the runner is not dumpable (so children cannot open /proc/1/fd); a child may
        # be, so that it can raise its own oom_score_adj below.
        _PRCTL(PR_SET_DUMPABLE, 1)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    mib = 1 << 20
    for res, value in (
        (resource.RLIMIT_AS, limits.address_space_mb * mib),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CPU, cpu_s),
    ):
        if value is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))
    if "random" in sys.modules:
        sys.modules["random"].seed()


def _child_main(body: Callable[[], None]) -> NoReturn:
    """Run ``body`` in a forked child and never return into the runner's loop."""
    code = 70
    try:
        body()
        code = 0
    except BaseException:
        code = 71
    finally:
        os._exit(code)


def _send(fd: int, msg: JsonDict) -> None:
    data = json.dumps(msg, ensure_ascii=True).encode() + b"\n"
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _kill_group(pid: int) -> None:
    for fn, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            fn(target, signal.SIGKILL)


def _reap(pid: int) -> int | None:
    """Kill ``pid``'s group and wait for ``pid``; return its wait status."""
    _kill_group(pid)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    _kill_group(pid)  # grandchildren left in the group
    return status


class MessageReader:
    """Newline-delimited JSON messages from a child's pipe, with deadlines."""

    TIMEOUT = "timeout"
    EOF = "eof"

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self, deadline: float) -> JsonDict | str:
        """Next message, ``TIMEOUT`` if the deadline passed first, ``EOF`` else."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                try:
                    msg = json.loads(line)
                except ValueError:
                    return self.EOF
                return msg if isinstance(msg, dict) else self.EOF
            if len(self.buf) > MAX_MESSAGE_BYTES:
                return self.EOF
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.TIMEOUT
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return self.TIMEOUT
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return self.EOF
            self.buf += chunk


def _fork(body: Callable[[int], None]) -> tuple[int, int]:
    """Fork a child running ``body(write_fd)``; return (pid, read_fd)."""
    r, w = os.pipe()
    for attempt in range(50):
        try:
            pid = os.fork()
            break
        except BlockingIOError:  # pids limit still exhausted by a previous job
            _cleanup_after_job()
            time.sleep(0.02 * (attempt + 1))
    else:
        os.close(r)
        os.close(w)
        raise RuntimeError("cannot fork")
    if pid == 0:
        _child_main(lambda: body(w))
    os.close(w)
    return pid, r


def _cleanup_after_job() -> None:
    """As PID 1 of the sandbox: kill every other process, reap, empty scratch dirs."""
    if not IS_INIT:
        return
    deadline = time.monotonic() + 2.0
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            break  # no children left at all
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    for scratch in ("/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(scratch))
        except OSError:
            continue
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


# --------------------------------------------------------------------------- results


class Output:
    """The runner's private copy of the real stdout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0

    def result(
        self,
        key: str,
        outcome: str,
        *,
        tests_run: int | None = None,
        tests_passed: int | None = None,
        duration_ms: float | None = None,
        detail: str | None = None,
    ) -> None:
        _send(
            self.fd,
            {
                "key": key,
                "outcome": outcome,
                "tests_run": tests_run,
                "tests_passed": tests_passed,
                "duration_ms": None if duration_ms is None else round(duration_ms, 3),
                "detail": None if detail is None else _truncate(detail),
            },
        )
        self.count += 1

    def done(self) -> None:
        _send(self.fd, {"done": True, "results": self.count})


# --------------------------------------------------------------------------- unittest


def _unittest_child(code: str, fd: int, limits: Limits, cpu_s: int) -> None:
    _enter_child(fd, limits, cpu_s)
    out = 3
    ns: JsonDict = {"__name__": MODULE_NAME, "__builtins__": builtins}
    start = time.perf_counter()
    try:
        exec(compile(code, "<coderm>", "exec"), ns)
    except SystemExit as exc:
        _send(out, {"status": "exit", "detail": f"SystemExit({exc.code!r})"[:DETAIL_CHARS]})
        return
    except BaseException as exc:
        _send(out, {"status": "exception", "ms": _ms(start), "detail": _describe(exc)})
        return
    ms = _ms(start)
    result = ns.get("result")
    if not isinstance(result, unittest.TestResult):
        _send(out, {"status": "no_result", "ms": ms, "detail": "no unittest result object"})
        return
    try:
        run = int(result.testsRun)
        bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        ok = bool(result.wasSuccessful())
        detail = None
        if result.failures or result.errors:
            test, tb = (result.failures or result.errors)[0]
            last = tb.strip().splitlines()[-1] if tb.strip() else ""
            detail = _truncate(
                f"{len(result.failures)} failures, {len(result.errors)} errors; {test.id()}: {last}"
            )
    except BaseException as exc:
        _send(out, {"status": "exception", "ms": ms, "detail": _describe(exc)})
        return
    _send(
        out,
        {
            "status": "result",
            "ms": ms,
            "ok": ok,
            "tests_run": run,
            "tests_passed": max(run - bad, 0),
            "detail": detail,
        },
    )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def run_unittest(job: JsonDict, limits: Limits, out: Output) -> None:
    key = str(job["key"])
    code = str(job["code"])
    limit = float(job.get("time_limit_s", 1.0))
    kill_after = float(job.get("kill_after_s", 2.0 * limit))
    grace = max(0.0, min(limits.grace_s, kill_after - limit))
    cpu_s = int(kill_after) + 2
    t0 = time.monotonic()
    pid, rfd = _fork(lambda w: _unittest_child(code, w, limits, cpu_s))
    try:
        msg = MessageReader(rfd).next(t0 + limit + grace)
    finally:
        status = _reap(pid)
        os.close(rfd)
    wall_ms = (time.monotonic() - t0) * 1000.0
    if msg == MessageReader.TIMEOUT:
        out.result(key, TIMEOUT, duration_ms=wall_ms, detail=f"exceeded {limit:g} s")
        return
    if not isinstance(msg, dict):
        out.result(key, CRASH, duration_ms=wall_ms, detail=_describe_status(status))
        return
    kind = msg.get("status")
    ms = float(msg.get("ms", wall_ms))
    detail = msg.get("detail")
    if kind == "exit":
        out.result(key, CRASH, duration_ms=wall_ms, detail=detail)
    elif ms > limit * 1000.0:
        out.result(key, TIMEOUT, duration_ms=ms, detail=f"finished after {ms:.0f} ms")
    elif kind in ("exception", "no_result"):
        out.result(key, ERROR, duration_ms=ms, detail=detail)
    elif kind == "result":
        out.result(
            key,
            PASS if msg.get("ok") is True else FAIL,
            tests_run=int(msg["tests_run"]),
            tests_passed=int(msg["tests_passed"]),
            duration_ms=ms,
            detail=detail,
        )
    else:
        out.result(key, CRASH, duration_ms=wall_ms, detail="malformed report")


# --------------------------------------------------------------------------- asserts


class CheckTimeout(BaseException):
    """Raised inside a check by its own alarm (CodeT's ``time_limit``)."""


def _raise_check_timeout(_signum: int, _frame: object) -> None:
    raise CheckTimeout


def _assert_worker(
    setup: str, checks: list[str], start: int, limit: float, fd: int, limits: Limits
) -> None:
    _enter_child(fd, limits, None)
    out = 3
    ns: JsonDict = {"__name__": MODULE_NAME, "__builtins__": builtins}
    t0 = time.perf_counter()
    try:
        exec(compile(setup, "<setup>", "exec"), ns)
    except SystemExit as exc:
        _send(out, {"setup": CRASH, "detail": f"SystemExit({exc.code!r})"[:DETAIL_CHARS]})
        return
    except BaseException as exc:
        _send(out, {"setup": ERROR, "detail": _describe(exc)})
        return
    _send(out, {"setup": "ok", "ms": _ms(t0)})
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
            outcome, detail = FAIL, _describe(exc)
        except SystemExit as exc:
            outcome, detail = CRASH, f"SystemExit({exc.code!r})"[:DETAIL_CHARS]
        except BaseException as exc:
            outcome, detail = ERROR, _describe(exc)
        ms = _ms(t)
        if ms > limit * 1000.0:
            outcome, detail = TIMEOUT, f"finished after {ms:.0f} ms"
        _send(out, {"i": i, "outcome": outcome, "ms": ms, "detail": detail})


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
            detail = _describe_status(_reap(pid))
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
        pid, rfd = _fork(functools.partial(_assert_worker, setup, codes, i, limit, limits=limits))
        reader = MessageReader(rfd)
        try:
            failure = _setup_failure(reader.next(t0 + setup_limit + limits.grace_s), setup_limit)
            if failure is not None:
                outcome, detail = failure
                if outcome == CRASH:
                    detail = f"{detail} ({_describe_status(_reap(pid))})"
                for k in keys[i:]:
                    out.result(k, outcome, detail=detail)
                return
            i = _run_checks(pid, reader, keys, i, limit, limits.grace_s, out)
        finally:
            _reap(pid)
            os.close(rfd)


# --------------------------------------------------------------------------- batch


def _read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("input ended early")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_batch(fd: int) -> JsonDict:
    if _read_exact(fd, len(MAGIC)) != MAGIC:
        raise ValueError("bad input header")
    (length,) = HEADER.unpack(_read_exact(fd, HEADER.size))
    if length > MAX_INPUT_BYTES:
        raise ValueError("input too large")
    batch = json.loads(zlib.decompress(_read_exact(fd, length)))
    if not isinstance(batch, dict) or not isinstance(batch.get("jobs"), list):
        raise ValueError("batch must be an object with a list of jobs")
    return batch


def encode_batch(batch: JsonDict) -> bytes:
    """The runner's input format (used by the driver and the tests)."""
    data = zlib.compress(json.dumps(batch).encode(), 6)
    return MAGIC + HEADER.pack(len(data)) + data


def _job_keys(job: object) -> Iterator[str]:
    if not isinstance(job, dict):
        return
    if job.get("kind") == "asserts" and isinstance(job.get("checks"), list):
        for check in job["checks"]:
            if isinstance(check, dict) and "key" in check:
                yield str(check["key"])
    elif "key" in job:
        yield str(job["key"])


def run_batch(batch: JsonDict, out: Output) -> None:
    limits = Limits.from_json(batch.get("limits"))
    for job in batch["jobs"]:
        before = out.count
        try:
            kind = job.get("kind")
            if kind == "unittest":
                run_unittest(job, limits, out)
            elif kind == "asserts":
                run_asserts(job, limits, out)
            else:
                raise ValueError(f"unknown job kind {kind!r}")
        except Exception as exc:
            # the runner failed on this job: every key it did not report yet gets
            # sandbox_error so the batch still has exactly one line per key
            detail = "runner: " + "".join(traceback.format_exception_only(exc))
            keys = list(_job_keys(job))
            for k in keys[out.count - before :]:
                out.result(k, SANDBOX_ERROR, detail=detail)
        finally:
            _cleanup_after_job()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if _PRCTL is not None:
        _PRCTL(PR_SET_DUMPABLE, 0)
    out_fd = os.dup(1)
    in_fd = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        batch = read_batch(in_fd)
    except Exception as exc:
        print(f"runner: cannot read batch: {exc!r}", file=sys.stderr)
        return 2
    finally:
        os.close(in_fd)
    out = Output(out_fd)
    run_batch(batch, out)
    out.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
