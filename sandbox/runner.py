"""Batch runner executed inside the sandbox container (stdlib only, Python 3.11).

Run as ``python3 -I -S /opt/coderm/runner.py`` by an unprivileged user, normally as
PID 1 of a container with a read-only root, a tmpfs ``/tmp`` and no network. One
self-contained file, because it is the only thing copied into the image.

Input (stdin): ``MAGIC`` + 8-byte big-endian length + that many bytes of
zlib-compressed JSON ``{"jobs": [...], "texts": [...], "limits": {...}, "parallel": K}``.
No EOF is needed. ``texts`` holds each distinct code text once; jobs refer to it by
index (a plain string is accepted too).

Output (stdout): one JSON line per unittest job and per assert check, in completion
order::

    {"key", "outcome", "tests_run", "tests_passed", "duration_ms", "detail"}

then a final ``{"done": true, "results": N, "cpu_s": S}`` line (S: CPU seconds used
by the runner and every process it reaped). Outcomes: pass, fail, error,
timeout, crash, sandbox_error (the runner itself failed on that job).

Job kinds:

- ``unittest`` (CodeRM): ``{"key", "solution", "test"}`` (the module is solution +
  two newlines + test) or ``{"key", "code"}``, with ``time_limit_s``, ``kill_after_s``
  and an optional ``adaptive`` limit. Up to K pairs run at once, each in a fresh
  process forked from a warmed :class:`Zygote`, scheduled by :class:`PairPool` (early
  exit for solutions that fail alone, reruns of pairs killed from outside). Pass iff
  the module finished within the limit and its module-level ``result`` is a genuine
  ``unittest`` result without failures or errors (:func:`_verdict`: what a pair can
  and cannot forge is in sandbox/README.md).
- ``asserts`` (CodeT): a forked worker execs ``setup`` once, then runs the checks in
  order in the same namespace, reporting each through a pipe. A check that overruns
  its limit or kills the worker gets timeout/crash; a fresh worker then continues
  with the next check. Assert jobs run one after another, after the unittest pairs.

Time is *effective* time: wall-clock time minus the time the process spent runnable
but waiting for a CPU (``/proc/<pid>/schedstat``), i.e. what the pair would have
taken on a core of its own; so running more pairs than cores changes no verdict.

Containment per child: own session/process group, stdin/stdout/stderr on /dev/null,
every other descriptor closed, rlimits on address space, file size, core dumps, open
files and CPU time, ``oom_score_adj`` 1000, not dumpable (siblings cannot open its
``/proc`` files), an audit hook (:class:`Guard`) that refuses signals to processes
outside the pair. As PID 1 the runner also kills processes that escaped their pair's
process group and empties /tmp and /dev/shm whenever a pair left something there.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import functools
import gc
import json
import operator
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time
import traceback
import unittest
import warnings
import zlib
from _json import encode_basestring_ascii as _quote
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any, NoReturn

# Modules candidate code commonly imports: importing them once here makes every pair
# that imports them cheaper. Rarely used heavier ones (decimal, statistics, datetime,
# hashlib) are left out: every fork pays for the runner's size. Failures are ignored
# (the image may lack some).
for _name in (
    "bisect",
    "collections",
    "copy",
    "functools",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "string",
    "typing",
):
    with contextlib.suppress(Exception):
        __import__(_name)

MAGIC = b"CODERM1\n"
HEADER = struct.Struct(">Q")
MAX_INPUT_BYTES = 1 << 30
MAX_MESSAGE_BYTES = 1 << 16
MAX_PARENT_COMPILE_CHARS = 1 << 18
DETAIL_CHARS = 300
MODULE_NAME = "__coderm_pair__"
FLUSH_BYTES = 1 << 15
FLUSH_SECONDS = 0.05

PASS, FAIL, ERROR, TIMEOUT, CRASH, SANDBOX_ERROR = (
    "pass",
    "fail",
    "error",
    "timeout",
    "crash",
    "sandbox_error",
)

JsonDict = dict[str, Any]

# The result types a pass must come from, captured before any candidate code runs.
RESULT_TYPES = (unittest.TestResult, unittest.TextTestResult)


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


def run_delay(
    pid: int | str = "self",
    opener: Callable[[str, int], int] = os.open,
    reader: Callable[[int, int], bytes] = os.read,
    closer: Callable[[int], None] = os.close,
) -> float:
    """Seconds ``pid`` has spent runnable but waiting for a CPU (0 if unknown)."""
    try:
        fd = opener(f"/proc/{pid}/schedstat", os.O_RDONLY)
    except OSError:
        return 0.0
    try:
        return int(reader(fd, 128).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0
    finally:
        closer(fd)


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        fields = raw[raw.rindex(b")") + 2 :].split()
        return fields[0].decode(), int(fields[1]), int(fields[2])
    except (OSError, ValueError, IndexError):
        return None


class Clock:
    """Effective time of the calling process: wall clock minus run-queue waits."""

    def __init__(self) -> None:
        self.now, self.delay_of = time.perf_counter, run_delay
        self.wall, self.delay = 0.0, 0.0

    def start(self) -> None:
        self.wall, self.delay = self.now(), self.delay_of()

    def seconds(self) -> float:
        return (self.now() - self.wall) - (self.delay_of() - self.delay)


def _confine(limits: Limits, cpu_s: int | None = None) -> None:
    """Confine this freshly forked process: own session, stdio on /dev/null, first in
    line for the OOM killer, not dumpable, the batch's rlimits (and ``RLIMIT_CPU``)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    if _PRCTL is not None:
        # the runner is not dumpable, so its children start owning no /proc files:
        # become dumpable just long enough to raise our own oom_score_adj, then stop
        # being dumpable so that siblings cannot open our /proc/<pid>/fd or mem.
        _PRCTL(PR_SET_DUMPABLE, 1)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    if _PRCTL is not None:
        _PRCTL(PR_SET_DUMPABLE, 0)
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


def _enter_child(keep_fd: int, limits: Limits, cpu_s: int | None) -> None:
    """Confine a freshly forked child; ``keep_fd`` (its pipe end) becomes fd 3."""
    _confine(limits, cpu_s)
    os.dup2(keep_fd, 3)  # dup2 clears FD_CLOEXEC on the copy
    os.closerange(4, 1 << 20)


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


def _fork(body: Callable[[int], None], attempts: int = 50) -> tuple[int, int]:
    """Fork a child running ``body(write_fd)``; return (pid, read_fd).

    While the pids limit is exhausted, kills leftovers (as PID 1) and retries;
    BlockingIOError after ``attempts``.
    """
    r, w = os.pipe()
    for attempt in range(attempts):
        try:
            pid = os.fork()
            break
        except BlockingIOError:
            if attempt + 1 == attempts:
                os.close(r)
                os.close(w)
                raise
            _cleanup_after_job()
            time.sleep(0.02 * (attempt + 1))
    if pid == 0:
        _child_main(lambda: body(w))
    os.close(w)
    return pid, r


def _empty_scratch() -> None:
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


def _scratch_is_dirty() -> bool:
    for scratch in ("/tmp", "/dev/shm"):
        with contextlib.suppress(OSError):
            if os.listdir(scratch):
                return True
    return False


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
    _empty_scratch()


# --------------------------------------------------------------------------- results


class Output:
    """The runner's private copy of the real stdout (buffered, flushed often)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0
        self.buf: list[bytes] = []
        self.size = 0
        self.flushed = time.monotonic()
        self.on_result: Callable[[str], None] | None = None

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
        line = {
            "key": key,
            "outcome": outcome,
            "tests_run": tests_run,
            "tests_passed": tests_passed,
            "duration_ms": None if duration_ms is None else round(duration_ms, 3),
            "detail": None if detail is None else _truncate(detail),
        }
        data = json.dumps(line, ensure_ascii=True).encode() + b"\n"
        self.buf.append(data)
        self.size += len(data)
        self.count += 1
        if self.on_result is not None:
            self.on_result(key)
        if self.size >= FLUSH_BYTES or time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        data = b"".join(self.buf)
        self.buf.clear()
        self.size = 0
        self.flushed = time.monotonic()
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def done(self) -> None:
        """The end marker, with the CPU time the runner and its processes used."""
        self.flush()
        used = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            used += usage.ru_utime + usage.ru_stime
        _send(self.fd, {"done": True, "results": self.count, "cpu_s": round(used, 3)})


# --------------------------------------------------------------------------- guards

GUARDED_MODULES = (
    "unittest",
    "unittest.case",
    "unittest.result",
    "unittest.runner",
    "unittest.suite",
    "unittest.loader",
)

_DATA_TYPES = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _is_behaviour(value: object) -> bool:
    """Whether replacing ``value`` can change behaviour (not a plain data attribute)."""
    return not isinstance(value, _DATA_TYPES)


def _functions_of(value: object) -> Iterator[FunctionType]:
    if isinstance(value, FunctionType):
        yield value
    elif isinstance(value, classmethod | staticmethod):
        yield from _functions_of(value.__func__)
    elif isinstance(value, property):
        for accessor in (value.fget, value.fset, value.fdel):
            yield from _functions_of(accessor)


class Snapshot:
    """The unittest machinery (and this runner) as they were before candidate code ran.

    Checked after the pair's module ran (``violations``): a module replaced in
    ``sys.modules``; a class or function of a unittest module rebound; a method of a
    unittest class replaced, added or removed; a trace or profile function left set.
    Replacing a function's code or defaults is reported as it happens by the pair's
    audit hook (``protected``: unittest's and the runner's classes and functions).
    Plain data attributes (``TestCase.maxDiff``) may change. Only the unittest modules
    are checked, not every module and builtin: a forked process pays a page copy for
    every object it touches.
    """

    def __init__(self) -> None:
        self.modules = tuple((n, sys.modules[n]) for n in GUARDED_MODULES if n in sys.modules)
        namespaces: list[Any] = [vars(module) for _, module in self.modules]
        owners: list[type | FunctionType] = []
        for namespace in list(namespaces):
            for value in namespace.values():
                unittest_class = isinstance(value, type) and value.__module__.startswith("unittest")
                if unittest_class and value not in owners:
                    owners.append(value)
                    namespaces.append(value.__dict__)
        this = sys.modules[__name__]
        owners.extend(v for v in vars(this).values() if getattr(v, "__module__", None) == __name__)
        groups: list[tuple[Any, tuple[str, ...], tuple[object, ...]]] = []
        for namespace in namespaces:
            names = tuple(n for n, v in namespace.items() if _is_behaviour(v))
            groups.append((namespace, names, tuple(namespace[n] for n in names)))
        protected: set[int] = set()
        for owner in owners:
            protected.add(id(owner))
            for attr in vars(owner).values() if isinstance(owner, type) else [owner]:
                protected.update(id(f) for f in _functions_of(attr))
        self.groups = tuple(groups)
        self.sizes = tuple((ns, len(ns)) for ns in namespaces[len(self.modules) :])
        self.protected = frozenset(protected)
        self.registry = sys.modules
        self.hooks = (sys.gettrace, sys.getprofile)

    def violations(
        self,
        is_not: Callable[[object, object], bool] = operator.is_not,
        values_of: Callable[..., Iterator[Any]] = map,
        pairs_of: Callable[..., Iterator[tuple[Any, ...]]] = zip,
    ) -> list[str]:
        """What was replaced since the snapshot was taken (empty if nothing)."""
        found = [f"sys.modules[{n!r}]" for n, m in self.modules if self.registry.get(n) is not m]
        for namespace, names, values in self.groups:
            current = tuple(values_of(namespace.get, names))
            if any(values_of(is_not, current, values)):
                found.extend(n for n, a, b in pairs_of(names, current, values) if a is not b)
        for namespace, size in self.sizes:
            if len(namespace) != size:
                found.append("a method added to a unittest class")
        if any(hook() is not None for hook in self.hooks):
            found.append("a trace or profile function")
        return found


def _own_process(pid: int, own_group: int) -> bool:
    """Whether signalling ``pid`` (``os.kill`` semantics) stays inside our group."""
    if pid == 0 or pid == -own_group:
        return True
    if pid <= 0:
        return False
    try:
        return os.getpgid(pid) == own_group
    except OSError:
        return True  # no such process: the signal goes nowhere


INTROSPECTION = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})


class Guard:
    """The audit hook of the pairs' processes, installed once in the zygote (an audit
    hook cannot be removed, and a fork inherits it); each pair's process points
    ``report`` at its own result channel.

    Refuses signals to processes outside the pair (the runner, sibling pairs) and
    reports them (crash); reports tracing, replacing the code or defaults of a
    protected function, raw memory access (``ctypes``) and object-graph walks (``gc``)
    (error).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.protected = snapshot.protected
        self.report: Callable[[str, str], None] | None = None

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        report = self.report
        if report is None:
            return
        if event == "os.kill" or event == "os.killpg":
            target = args[0] if event == "os.kill" else -args[0]
            if args[1] != 0 and not _own_process(int(target), os.getpgid(0)):
                report(CRASH, f"{event}{args}: signal outside the pair")
                raise PermissionError("the sandbox forbids signalling other processes")
        elif event == "object.__setattr__" or event == "object.__delattr__":
            if id(args[0]) in self.protected:  # a function's code or defaults
                report(ERROR, f"{event}: {getattr(args[0], '__name__', '?')}.{args[1]} patched")
        elif event == "sys.settrace" or event == "sys.setprofile":
            report(ERROR, f"{event}: tracing is not allowed")
        elif event in INTROSPECTION or event.startswith("ctypes."):
            report(ERROR, f"{event}: not allowed")


# --------------------------------------------------------------------------- unittest


@dataclass(frozen=True)
class Adaptive:
    """Per-test limit: ``clamp(factor x slowest finished run of the test by other
    solutions, floor_s, time_limit_s)`` once ``min_samples`` such runs finished."""

    factor: float
    floor_s: float
    min_samples: int

    @classmethod
    def from_json(cls, raw: object) -> Adaptive | None:
        if not isinstance(raw, dict):
            return None
        return cls(float(raw["factor"]), float(raw["floor_s"]), int(raw["min_samples"]))


@dataclass
class Pair:
    """One unittest job, with its code as text indices."""

    index: int
    key: str
    solution: int | None  # text of the solution part (split jobs)
    test: int | None  # text of the test part (split jobs)
    code: int | None  # text of the whole module (unsplit jobs)
    limit: float
    kill_after: float
    adaptive: Adaptive | None
    solo: bool = False


UNKNOWN, PROBING, KNOWN_OK = 0, 1, 2


@dataclass
class Group:
    """The pending pairs of one solution; its first pair probes the solution alone."""

    pending: deque[Pair] = field(default_factory=deque)
    state: int = UNKNOWN


@dataclass
class Running:
    """A pair's process, as the scheduler sees it (``pid`` 0 until the zygote forked it)."""

    pair: Pair
    pid: int
    nonce: str
    t0: float
    limit: float
    deadline: float  # effective seconds after the start
    wall_cap: float
    probe: bool
    delay: float = 0.0
    sol_done: bool = False
    final: JsonDict | None = None
    taints: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    timed_out: bool = False
    stopped: bool = False
    elapsed: float = 0.0
    effective: float | None = None


Outcome = tuple[str, float | None, str | None, int | None, int | None]
Parts = tuple[CodeType | str | None, CodeType | str]


def _compile(source: str) -> CodeType | str:
    """Compile a module; the error's description if it does not compile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return compile(source, "<coderm>", "exec", dont_inherit=True)
        except BaseException as exc:
            return _describe(exc)


class Reporter:
    """A pair's messages to the runner (fd 3: one datagram each, signed with the pair's
    nonce), written only with references taken before the pair's code ran: rebinding
    ``os.write``, ``json`` or builtins later does not change what it sends."""

    def __init__(self, nonce: str) -> None:
        self.head = '{"n":' + _quote(nonce)
        self.write = os.write
        self.quote = _quote
        self.encode = str.encode

    def send(self, **fields: str | float | bool | None) -> None:
        parts = [self.head]
        for name, value in fields.items():
            if value is None or isinstance(value, bool):
                text = "null" if value is None else ("true" if value else "false")
            elif isinstance(value, str):
                text = self.quote(value[:DETAIL_CHARS])
            else:
                text = repr(value)
            parts.append(f',"{name}":{text}')
        self.write(3, self.encode("".join(parts) + "}"))

    def taint(self, outcome: str, detail: str) -> None:
        self.send(taint=outcome, detail=detail)


def _pair_child(parts: Parts, nonce: str, probe: bool, cpu_s: int, zygote: Zygote) -> None:
    """A pair's process (forked by the zygote, which confined itself already): run the
    module, then report its verdict through fd 3 (the shared result socket).

    Everything used after the pair's code ran is bound to a local first.
    """
    os.setsid()
    os.closerange(4, 1 << 20)
    try:  # noqa: SIM105 - plain try: each object a fork touches costs a page copy
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    except (ValueError, OSError):
        pass
    reporter, clock, verdict, describe = Reporter(nonce), Clock(), _verdict, _describe
    snapshot = zygote.snapshot
    zygote.guard.report = reporter.taint
    ns: JsonDict = {"__name__": MODULE_NAME, "__builtins__": builtins}
    solution, main = parts
    phase = "solution" if solution is not None else "test"
    clock.start()
    try:
        if solution is not None:
            exec(solution, ns)
            if probe:
                reporter.send(sol=True)
            phase = "test"
        exec(main, ns)
    except SystemExit as exc:
        ms = 1e3 * clock.seconds()
        reporter.send(status="exit", phase=phase, ms=ms, detail=describe(exc))
        return
    except BaseException as exc:
        ms = 1e3 * clock.seconds()
        reporter.send(status="exception", phase=phase, ms=ms, detail=describe(exc))
        return
    ms = 1e3 * clock.seconds()
    reporter.send(phase="test", ms=ms, **verdict(ns, snapshot))


def _verdict(
    ns: JsonDict,
    snapshot: Snapshot,
    result_types: tuple[type, ...] = RESULT_TYPES,
    list_type: type = list,
    int_type: type = int,
    str_type: type = str,
    get_type: Callable[[object], type] = type,
    get_vars: Callable[[object], dict[str, Any]] = vars,
    length: Callable[[Any], int] = len,
) -> dict[str, str | float | bool | None]:
    """The pair's verdict from its namespace: ``result`` must be a genuine
    ``unittest`` result (exact type, plain lists) of an untampered unittest. Reads it
    with references bound when the runner started, never with ``wasSuccessful``. The
    unittest machinery is checked only for a would-be pass (tampering cannot turn a
    pass into anything better, and checking costs page copies)."""
    result = ns.get("result")
    if get_type(result) not in result_types:
        return {"status": "no_result", "detail": "no unittest result object"}
    state = get_vars(result)
    failures: Any = state.get("failures")
    errors: Any = state.get("errors")
    unexpected: Any = state.get("unexpectedSuccesses", [])
    run: Any = state.get("testsRun")
    if get_type(run) is not int_type or any(
        get_type(x) is not list_type for x in (failures, errors, unexpected)
    ):
        return {"status": "no_result", "detail": "malformed unittest result"}
    bad = length(failures) + length(errors) + length(unexpected)
    if bad == 0:
        tampered = snapshot.violations()
        if tampered:
            return {"status": "tampered", "detail": "unittest modified: " + ", ".join(tampered)}
    detail = None
    if failures or errors:
        counts = f"{length(failures)} failures, {length(errors)} errors"
        try:
            test, tb = (failures or errors)[0]
            last = str_type(tb).strip().splitlines()[-1:] or [""]
            detail = f"{counts}; {test.id()}: {last[0]}"
        except BaseException:
            detail = counts
    return {
        "status": "result",
        "ok": bad == 0,
        "tests_run": run,
        "tests_passed": run - bad if run > bad else 0,
        "detail": detail,
    }


REAP_SECONDS = 0.02


def _warm_pair_path(snapshot: Snapshot, rounds: int = 10) -> None:
    """Run what every pair's process runs around the pair's code, here, so that the
    interpreter has specialised it before the forks (fewer pages for each to copy)."""
    reporter = Reporter("0" * 16)
    reporter.write = lambda _fd, data: memoryview(data).nbytes
    passing: JsonDict = {"result": unittest.TestResult()}
    failing: JsonDict = {}
    exec(compile(WARM_UP, "<warm-up>", "exec"), failing)
    for _ in range(rounds):
        clock = Clock()
        clock.start()
        for ns in (passing, failing):
            reporter.send(phase="test", ms=1e3 * clock.seconds(), **_verdict(ns, snapshot))
        reporter.send(sol=True)
        reporter.taint(ERROR, "warm-up")
        _describe(ValueError("warm-up"))


class Zygote:
    """The process that forks the pairs.

    Forked once from the runner after the batch is read and the interpreter warmed;
    it confines itself once (what a fork inherits: stdio on /dev/null, rlimits,
    ``oom_score_adj`` 1000, not dumpable), compiles each text once, forks a pair on
    each request and reports each child's exit status when it reaps it. Keeping the
    forking process this idle is what makes a fork cheap: the scheduler's own
    bookkeeping would otherwise copy a few hundred pages after every fork.

    The first zygote of a batch is forked before the batch is read, so that its heap
    (which every fork copies the page tables of, and every pair's exit unmaps) holds
    the interpreter and the runner only; the texts stay in a memory file
    (:class:`TextFile`) and are read when a pair needs them, compiled once.

    File descriptors it keeps (and every pair inherits): 0-2 on ``/dev/null``, 3 the
    shared result socket (datagrams to the scheduler; each pair signs its own with its
    nonce), 4 its control socket and 5 the texts file (both closed by each pair).

    Requests (scheduler to zygote, one datagram each): first ``I`` (the texts file is
    written), then ``index probe nonce cpu_s code solution test`` (text indices, -1 for
    none). Messages back: ``S index pid split`` (started), ``E index detail`` (does not
    compile), ``B index`` (cannot fork now), ``X pid status`` (a child was reaped).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.guard = Guard(snapshot)
        self.texts: TextFile | None = None
        self.compiled: dict[int, CodeType | str | None] = {}
        self.futures: dict[int, bool] = {}

    def serve(self, control_fd: int, results_fd: int, texts_fd: int) -> NoReturn:
        """Wait for the texts, then answer requests until the scheduler closes its end;
        reap exited children between requests (at least every ``REAP_SECONDS``)."""
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in (results_fd, control_fd, texts_fd)]
        for target, fd in enumerate(high, start=3):
            os.dup2(fd, target)
        os.closerange(6, 1 << 20)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=4)
        try:
            start = sock.recv(16)
        except OSError:
            os._exit(1)
        if start != b"I":
            os._exit(0)
        self.texts = TextFile(5)
        _confine(self.texts.limits)
        sys.addaudithook(self.guard)
        _warm_pair_path(self.snapshot)
        while True:
            ready, _, _ = select.select([4], [], [], REAP_SECONDS)
            if ready:
                try:
                    data = sock.recv(256)
                except OSError:
                    os._exit(1)
                if not data:
                    os._exit(0)
                sock.send(self._start(data))
            self._reap_exited(sock)

    def _reap_exited(self, sock: socket.socket) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sock.send(b"X %d %d" % (pid, status))

    def _text(self, index: int) -> str:
        assert self.texts is not None
        return self.texts.text(index)

    def _code(self, index: int) -> CodeType | str | None:
        """The compiled text (a string: why it does not compile; None: too large).
        Also notes whether it may hold a ``__future__`` import (it changes how the text
        after it compiles, so such a pair's parts are compiled together)."""
        if index not in self.compiled:
            text = self._text(index)
            self.futures[index] = "__future__" in text
            self.compiled[index] = _compile(text) if len(text) <= MAX_PARENT_COMPILE_CHARS else None
        return self.compiled[index]

    def _parts(self, code: int, solution: int, test: int) -> Parts | str:
        """(solution, rest) to exec in order, or why the module does not compile."""
        if code >= 0:
            compiled = self._code(code)
            if compiled is None:
                return None, self._text(code)  # compiled by the child
            return compiled if isinstance(compiled, str) else (None, compiled)
        first, second = self._code(solution), self._code(test)
        separable = not (self.futures[solution] or self.futures[test])
        if isinstance(first, CodeType) and isinstance(second, CodeType) and separable:
            return first, second
        # exact fallback: the two parts may only compile (or only mean the same)
        # together, so compile the whole module
        whole = self._text(solution) + "\n\n" + self._text(test)
        if len(whole) > MAX_PARENT_COMPILE_CHARS:
            return None, whole
        compiled = _compile(whole)
        return compiled if isinstance(compiled, str) else (None, compiled)

    def _start(self, request: bytes) -> bytes:
        """Fork the pair of ``request`` (``index probe nonce cpu_s code solution test``)."""
        fields = request.split()
        index = int(fields[0])
        parts = self._parts(int(fields[4]), int(fields[5]), int(fields[6]))
        if isinstance(parts, str):
            return b"E %d " % index + parts.encode("utf-8", "replace")
        gc.freeze()  # the child's garbage collections then skip (and copy) none of ours
        try:
            pid = os.fork()
        except BlockingIOError:  # the pids limit
            return b"B %d" % index
        if pid == 0:
            probe, nonce, cpu_s = fields[1] == b"1", fields[2].decode(), int(fields[3])
            _child_main(lambda: _pair_child(parts, nonce, probe, cpu_s, self))
        return b"S %d %d %d" % (index, pid, parts[0] is not None)


def _serve(zygote: Zygote, control_fd: int, results_fd: int, texts_fd: int) -> None:
    zygote.serve(control_fd, results_fd, texts_fd)


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = os.pread(fd, min(n, 1 << 24), offset)
        if not chunk:
            raise EOFError("texts file ended early")
        chunks.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def write_texts(fd: int, texts: list[str], limits: object) -> None:
    """Write the batch's texts and limits to the memory file ``fd`` (see :class:`TextFile`)."""
    blobs = [t.encode("utf-8", "surrogatepass") for t in texts]
    offsets: list[int] = []
    position = 0
    for blob in blobs:
        offsets += [position, len(blob)]
        position += len(blob)
    header = json.dumps({"limits": limits, "offsets": offsets}).encode()
    data = memoryview(HEADER.pack(len(header)) + header + b"".join(blobs))
    os.ftruncate(fd, 0)
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], written)


class TextFile:
    """The zygote's view of the texts file: an 8-byte header length, a JSON header
    ``{"limits", "offsets": [offset, length, ...]}``, then each text's UTF-8 bytes."""

    def __init__(self, fd: int) -> None:
        (length,) = HEADER.unpack(_pread_exact(fd, HEADER.size, 0))
        header = json.loads(_pread_exact(fd, length, HEADER.size))
        self.fd = fd
        self.base = HEADER.size + length
        self.offsets: list[int] = header["offsets"]
        self.limits = Limits.from_json(header.get("limits"))

    def text(self, index: int) -> str:
        """Text ``index`` of the batch."""
        offset, length = self.offsets[2 * index], self.offsets[2 * index + 1]
        return _pread_exact(self.fd, length, self.base + offset).decode("utf-8", "surrogatepass")


class ZygoteLink:
    """The scheduler's end of the zygote: its pid and control socket, the result
    socket its pairs write to, and the memory file with the batch's texts.

    Created before the batch is read (the first zygote is forked from a runner whose
    heap holds no batch); a zygote forked again later (the first one was killed) is
    told at once that the texts are there.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ours.setblocking(False)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.results, self.results_child = ours, theirs.detach()
        self.texts_fd = os.memfd_create("coderm-texts")
        self.loaded = False
        self.sock: socket.socket | None = None
        self.pid = 0
        self.spawn()

    def spawn(self) -> None:
        """Fork a zygote (told to start if the texts are loaded)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        zygote = Zygote(self.snapshot)
        serve = functools.partial(
            _serve, zygote, theirs.fileno(), self.results_child, self.texts_fd
        )
        pid = os.fork()
        if pid == 0:
            _child_main(serve)
        theirs.close()
        self.sock, self.pid = ours, pid
        if self.loaded:
            ours.send(b"I")
        ours.setblocking(False)

    def load(self, texts: list[str], limits: object) -> None:
        """Write the batch's texts and limits and let the zygote start."""
        assert self.sock is not None
        write_texts(self.texts_fd, texts, limits)
        self.loaded = True
        self.sock.setblocking(True)
        self.sock.send(b"I")
        self.sock.setblocking(False)

    def stop(self) -> None:
        """Close the control socket (the zygote exits) and wait for the zygote."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def close(self) -> None:
        """Stop the zygote and release the sockets and the texts file."""
        self.stop()
        self.results.close()
        for fd in (self.results_child, self.texts_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class PairPool:
    """Runs unittest pairs, up to ``parallel`` at once, each in a fresh process forked
    from the warmed :class:`Zygote`.

    Scheduling: pairs run in job order, solution by solution. The first pair of a
    solution is its *probe*: it tells the runner when the solution part finished. If
    the solution part itself raised, exited or overran the limit, every other pair of
    that solution gets the same verdict without running (the solution runs first in
    every pair's module, so each of them would fail the same way). A pair whose
    process died of a signal the runner did not send, or was stopped (e.g. by a
    sibling), runs again at the end, alone.

    Nothing waits on the zygote: requests, its replies and exit reports, and the
    pairs' messages (one shared datagram socket, each message signed with its pair's
    nonce; anything else is dropped) are handled as they come, in one loop with the
    deadlines.
    """

    def __init__(
        self, pairs: list[Pair], limits: Limits, out: Output, parallel: int, link: ZygoteLink
    ) -> None:
        self.pairs = pairs
        self.limits = limits
        self.out = out
        self.parallel = max(1, parallel)
        self.link = link
        self.groups: list[Group] = []
        by_solution: dict[int, Group] = {}
        for pair in pairs:
            if pair.solution is None:
                group = Group(state=KNOWN_OK)
                self.groups.append(group)
            else:
                group = by_solution.get(pair.solution) or Group()
                if pair.solution not in by_solution:
                    by_solution[pair.solution] = group
                    self.groups.append(group)
            group.pending.append(pair)
        self.group_of = by_solution
        self.first = 0
        self.running: dict[str, Running] = {}  # by nonce
        self.starting: dict[int, Running] = {}  # by pair index, until the zygote replies
        self.by_pid: dict[int, Running] = {}
        self.retry: deque[tuple[Pair, bool]] = deque()
        self.busy = 0
        self.solo: list[Pair] = []
        self.slowest: dict[int, float] = {}
        self.finished: dict[int, int] = {}
        self.dirty = False
        self.sock = link.sock
        self.results = link.results
        self.zygote = link.pid
        self.ended: deque[int] = deque(maxlen=64)  # pids of pairs that ended lately

    # ---------------------------------------------------------------- scheduling

    def run(self) -> None:
        """Run every pair and report each result (the link's texts are loaded)."""
        self._loop()
        for pair in self.solo:
            pair.solo = True
        self.groups = [Group(pending=deque(self.solo), state=KNOWN_OK)] if self.solo else []
        self.first, self.parallel, self.solo = 0, 1, []
        self._loop()

    def _loop(self) -> None:
        while True:
            self._fill()
            if self.running:
                self._wait()
            elif self.dirty:
                self._clean()
            elif self.retry:  # nothing runs, yet no process can be forked
                self.busy += 1
                if self.busy > 50:
                    pair, _ = self.retry.popleft()
                    self._emit(pair, (SANDBOX_ERROR, None, "runner: cannot fork", None, None))
                    continue
                if IS_INIT:
                    self._sweep()
                time.sleep(0.02)
            else:
                return

    def _fill(self) -> None:
        while len(self.running) < self.parallel and not self.dirty:
            picked = self.retry.popleft() if self.retry else self._pick()
            if picked is None:
                return
            self._start(*picked)

    def _pick(self) -> tuple[Pair, bool] | None:
        """The next pair to start and whether it probes its solution, or None."""
        i = self.first
        while i < len(self.groups):
            group = self.groups[i]
            if not group.pending:
                if i == self.first:
                    self.first += 1
                i += 1
                continue
            if group.state != PROBING:
                probe = group.state == UNKNOWN
                if probe:
                    group.state = PROBING
                return group.pending.popleft(), probe
            i += 1
        return None

    def _limit(self, pair: Pair) -> float:
        adaptive = pair.adaptive
        if adaptive is None or pair.test is None:
            return pair.limit
        if self.finished.get(pair.test, 0) < adaptive.min_samples:
            return pair.limit
        scaled = adaptive.factor * self.slowest[pair.test]
        return min(pair.limit, max(adaptive.floor_s, scaled))

    def _set_state(self, pair: Pair, state: int) -> None:
        if pair.solution is not None and pair.solution in self.group_of:
            self.group_of[pair.solution].state = state

    # ---------------------------------------------------------------- the zygote

    def _zygote_lost(self) -> None:
        """The zygote is gone (a pair killed it): give up every pair in flight (each
        runs again alone) and start a new zygote."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.zygote, signal.SIGKILL)
        self.link.stop()
        for run in list(self.running.values()):
            if run.pid:
                _kill_group(run.pid)
                self._interfered(run)
            else:  # never started
                self.retry.appendleft((run.pair, run.probe))
        self.running.clear()
        self.starting.clear()
        self.by_pid.clear()
        self.link.spawn()
        self.sock, self.zygote = self.link.sock, self.link.pid

    def _on_zygote(self) -> None:
        """Handle every message the zygote has sent."""
        assert self.sock is not None
        zygote = self.zygote
        while zygote == self.zygote:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            try:
                kind, first, rest = [*data.split(b" ", 2), b""][:3]
                number = int(first)
            except ValueError:
                self._zygote_lost()
                return
            if kind == b"X":
                self._exited(number, int(rest))
            else:
                self._reply(kind, number, rest)

    def _reply(self, kind: bytes, index: int, rest: bytes) -> None:
        run = self.starting.pop(index, None)
        if run is None:
            return
        if kind == b"S":
            pid, split = rest.split()
            run.pid, run.t0 = int(pid), time.monotonic()
            self.by_pid[run.pid] = run
            self.busy = 0
            if run.probe and split != b"1":
                # no separate solution part to time: this pair cannot probe its solution
                self._set_state(run.pair, UNKNOWN)
                run.probe = False
            if run.ended:
                self._end(run)
            return
        del self.running[run.nonce]
        if kind == b"E":  # the module does not compile: nothing ran
            detail = rest.decode("utf-8", "replace")
            self._emit(run.pair, (ERROR, None, detail, None, None))
            self._after_probe(run.pair, run.probe, None, None)
        else:  # no process can be forked right now
            self.retry.appendleft((run.pair, run.probe))

    def _exited(self, pid: int, status: int) -> None:
        """A pair's process was reaped: if it sent no verdict, it died without one."""
        self._drain_results()  # what it sent before it died is already there
        run = self.by_pid.get(pid)
        if run is not None and run.final is None and not run.ended:
            run.ended = True
            run.elapsed = time.monotonic() - run.t0
            self._end(run, status)

    # ---------------------------------------------------------------- starting

    def _start(self, pair: Pair, probe: bool) -> None:
        """Ask the zygote to fork ``pair`` (its reply is handled by the loop)."""
        assert self.sock is not None
        limit = self._limit(pair)
        kill_after = max(pair.kill_after, limit)
        nonce = os.urandom(8).hex()
        code, solution, test = (
            -1 if t is None else t for t in (pair.code, pair.solution, pair.test)
        )
        cpu_s = int(kill_after) + 2
        request = b"%d %d %s %d %d %d %d" % (
            pair.index,
            probe,
            nonce.encode(),
            cpu_s,
            code,
            solution,
            test,
        )
        try:
            self.sock.send(request)
        except OSError:
            self.retry.appendleft((pair, probe))
            self._zygote_lost()
            return
        deadline = min(limit + self.limits.grace_s, kill_after)
        wall_cap = 4.0 * kill_after * self.parallel + 1.0
        run = Running(pair, 0, nonce, 0.0, limit, deadline, wall_cap, probe)
        self.running[nonce] = run
        self.starting[pair.index] = run

    # ---------------------------------------------------------------- waiting

    def _wait(self) -> None:
        assert self.sock is not None and self.results is not None
        now = time.monotonic()
        timeout = 1.0
        for r in self.running.values():
            if r.pid and not r.ended:
                left = min(r.deadline - (now - r.t0 - r.delay), r.wall_cap - (now - r.t0))
                timeout = min(timeout, left)
        control, results = self.sock.fileno(), self.results.fileno()
        ready, _, _ = select.select([results, control], [], [], max(0.0, timeout))
        if results in ready:
            self._drain_results()
        if control in ready:
            self._on_zygote()
        now = time.monotonic()
        for run in list(self.running.values()):
            if not run.pid or run.ended:
                continue
            elapsed = now - run.t0
            if elapsed - run.delay < run.deadline and elapsed < run.wall_cap:
                continue
            run.delay = run_delay(run.pid)
            if elapsed - run.delay >= run.deadline or elapsed >= run.wall_cap:
                self._drain_results()  # its verdict may have just arrived
                if run.ended:
                    continue
                run.timed_out, run.effective = True, elapsed - run.delay
                run.stopped = (_proc_stat(run.pid) or ("R",))[0] in ("T", "t")
                self._mark_ended(run)

    def _drain_results(self) -> None:
        """Read every pending message on the result socket."""
        assert self.results is not None
        while True:
            try:
                data = self.results.recv(1 << 17)
            except BlockingIOError:
                return
            try:
                msg = json.loads(data)
            except ValueError:
                continue  # not ours: no pair writes malformed messages
            run = self.running.get(str(msg.get("n"))) if isinstance(msg, dict) else None
            if run is None or run.ended:
                continue  # unsigned, forged or late: dropped
            if "taint" in msg:
                run.taints.append((str(msg["taint"]), str(msg.get("detail"))))
            elif "sol" in msg:
                run.sol_done = True
                if run.probe:
                    self._set_state(run.pair, KNOWN_OK)
            else:
                run.final = msg
                self._mark_ended(run)

    # ---------------------------------------------------------------- finishing

    def _mark_ended(self, run: Running) -> None:
        """The pair is over (verdict or deadline); once its pid is known, kill what is
        left of it and settle it."""
        run.ended = True
        run.elapsed = time.monotonic() - run.t0 if run.pid else 0.0
        if run.pid:
            self._end(run)

    def _end(self, run: Running, status: int | None = None) -> None:
        run.delay = max(run.delay, run_delay(run.pid))
        _kill_group(run.pid)
        del self.running[run.nonce]
        self.by_pid.pop(run.pid, None)
        self._finish(run, status)

    def _finish(self, run: Running, status: int | None) -> None:
        self.ended.append(run.pid)
        effective = max(0.0, run.elapsed - run.delay) if run.effective is None else run.effective
        pair = run.pair
        foreign = run.final is None and not run.timed_out and _foreign_signal(status)
        if not pair.solo and (run.stopped or foreign):
            self._interfered(run)
        else:
            outcome = self._outcome(run, status, effective)
            self._emit(pair, outcome)
            self._after_probe(pair, run.probe, run, outcome)
            if outcome[0] in (PASS, FAIL) and pair.test is not None and outcome[1] is not None:
                seconds = outcome[1] / 1e3
                self.finished[pair.test] = self.finished.get(pair.test, 0) + 1
                self.slowest[pair.test] = max(self.slowest.get(pair.test, 0.0), seconds)
        if IS_INIT:
            self._sweep()
            if _scratch_is_dirty():
                self.dirty = True

    def _interfered(self, run: Running) -> None:
        """A pair disturbed from outside: run it again alone (a crash if it was)."""
        if run.pair.solo:
            self._emit(run.pair, (CRASH, None, "killed from outside the pair", None, None))
        else:
            self.solo.append(run.pair)
        self._after_probe(run.pair, run.probe, None, None)

    def _outcome(self, run: Running, status: int | None, effective: float) -> Outcome:
        msg = run.final
        if msg is None and run.timed_out:
            return TIMEOUT, effective * 1e3, f"exceeded {run.limit:g} s", None, None
        if msg is None:
            return CRASH, effective * 1e3, _describe_status(status), None, None
        kind = msg.get("status")
        ms = float(msg.get("ms", effective * 1e3))
        detail = msg.get("detail")
        detail = None if detail is None else str(detail)
        outcome: Outcome
        if kind == "exit":
            outcome = CRASH, ms, detail, None, None
        elif ms > run.limit * 1e3:
            late = f"finished after {ms:.0f} ms"
            outcome = TIMEOUT, ms, late, None, None
        elif kind in ("exception", "no_result", "tampered"):
            outcome = ERROR, ms, detail, None, None
        elif kind == "result":
            run_n, passed = int(msg["tests_run"]), int(msg["tests_passed"])
            outcome = (PASS if msg.get("ok") is True else FAIL), ms, detail, run_n, passed
        else:
            outcome = CRASH, ms, "malformed report", None, None
        if run.taints and outcome[0] in (PASS, FAIL, ERROR):
            worst = CRASH if any(t == CRASH for t, _ in run.taints) else ERROR
            outcome = worst, ms, run.taints[0][1], None, None
        return outcome

    def _after_probe(
        self, pair: Pair, probe: bool, run: Running | None, outcome: Outcome | None
    ) -> None:
        """Settle the probe's solution: known good, failed (fail the rest), or unknown."""
        if not probe or pair.solution is None:
            return
        group = self.group_of[pair.solution]
        failed = None if run is None or outcome is None else _solution_failure(run, outcome)
        if failed is None:
            if group.state == PROBING:
                group.state = KNOWN_OK if run is not None and run.sol_done else UNKNOWN
            return
        group.state = KNOWN_OK
        kept: deque[Pair] = deque()
        kind, detail, limit = failed
        assert outcome is not None
        for other in group.pending:
            if kind == TIMEOUT and self._limit(other) > limit:
                kept.append(other)  # a longer limit might let the solution finish
                continue
            self._emit(other, (kind, outcome[1], detail, None, None))
        group.pending = kept
        if kept:
            group.state = UNKNOWN

    def _emit(self, pair: Pair, outcome: Outcome) -> None:
        kind, ms, detail, run, passed = outcome
        self.out.result(
            pair.key, kind, tests_run=run, tests_passed=passed, duration_ms=ms, detail=detail
        )

    def _sweep(self) -> None:
        """As PID 1: kill processes outside the zygote and every running pair's group
        (e.g. escaped with setsid), reap the zombies they leave. Pairs that ended
        lately are skipped: they are the zygote's to reap."""
        alive = {r.pid for r in self.running.values()}
        alive.add(self.zygote)
        known = alive.union(self.ended)
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in known or name == "1":
                continue
            pid = int(name)
            info = _proc_stat(pid)
            if info is None:
                continue
            state, parent, group = info
            if state == "Z":
                if parent == 1:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
            elif group not in alive and parent != self.zygote:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _clean(self) -> None:
        """Nothing runs: kill every leftover process, empty /tmp and /dev/shm."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            self._sweep()
            others = [n for n in os.listdir("/proc") if n.isdigit() and int(n) != 1]
            if all(int(n) == self.zygote or _is_zombie_child(int(n), self.zygote) for n in others):
                break
            time.sleep(0.005)
        _empty_scratch()
        self.dirty = False


def _is_zombie_child(pid: int, parent: int) -> bool:
    info = _proc_stat(pid)
    return info is None or (info[0] == "Z" and info[1] == parent)


def _solution_failure(run: Running, outcome: Outcome) -> tuple[str, str, float] | None:
    """How a probe's solution part failed on its own, if it did: (outcome, detail,
    the limit it overran or infinity)."""
    if run.sol_done or run.taints:
        return None
    if outcome[0] == TIMEOUT:
        return TIMEOUT, f"the solution alone exceeded {run.limit:g} s", run.limit
    msg = run.final
    if msg is not None and msg.get("phase") == "solution" and outcome[0] in (ERROR, CRASH):
        return outcome[0], f"the solution alone failed: {outcome[2]}", float("inf")
    return None


def _foreign_signal(status: int | None) -> bool:
    """Whether the process died of a signal (the runner sent none yet)."""
    return status is not None and os.WIFSIGNALED(status)


def _text(raw: object, texts: list[str]) -> int:
    """Index of a job's code in ``texts`` (a literal string is appended)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(texts):
        return raw
    if isinstance(raw, str):
        texts.append(raw)
        return len(texts) - 1
    raise ValueError("job code must be a text index or a string")


def parse_pair(index: int, job: JsonDict, texts: list[str]) -> Pair:
    limit = float(job.get("time_limit_s", 1.0))
    kill_after = float(job.get("kill_after_s", 2.0 * limit))
    adaptive = Adaptive.from_json(job.get("adaptive"))
    if "solution" in job and "test" in job:
        solution, test = _text(job["solution"], texts), _text(job["test"], texts)
        return Pair(index, str(job["key"]), solution, test, None, limit, kill_after, adaptive)
    code = _text(job["code"], texts)
    return Pair(index, str(job["key"]), None, None, code, limit, kill_after, adaptive)


WARM_UP = """
import io
import unittest

def _f(x):
    return x + 1

class _T(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(_f(1), 2)
        self.assertTrue(_f(0))
        self.assertIn(1, [1])
        assert _f(2) == 3

    def test_fail(self):
        self.assertEqual([_f(1), 2], [3, 4])

    def test_assert(self):
        assert _f(1) == 5

    def test_error(self):
        raise ValueError("x")

    def test_raises(self):
        with self.assertRaises(ZeroDivisionError):
            1 / 0

suite = unittest.TestLoader().loadTestsFromTestCase(_T)
result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=2).run(suite)
"""


def warm_up(rounds: int = 10) -> None:
    """Run a small test module here, before forking: the interpreter specialises the
    unittest code it runs and loads what failures need, so that pairs forked later
    copy fewer pages doing it themselves."""
    code = compile(WARM_UP, "<warm-up>", "exec")
    for _ in range(rounds):
        exec(code, {"__name__": "__coderm_warm_up__"})
    gc.collect()


# --------------------------------------------------------------------------- asserts


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


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
    if not isinstance(batch.get("texts", []), list):
        raise ValueError("texts must be a list")
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


def _runner_failed(exc: BaseException, keys: Iterator[str] | list[str], out: Output) -> None:
    """The runner failed on a job: every key it did not report yet gets sandbox_error,
    so that the batch still has exactly one line per key."""
    detail = "runner: " + "".join(traceback.format_exception_only(exc))
    for key in keys:
        out.result(key, SANDBOX_ERROR, detail=detail)


def start_zygote() -> ZygoteLink:
    """Warm the interpreter, take the unittest snapshot and fork the first zygote."""
    warm_up()
    return ZygoteLink(Snapshot())


def run_batch(batch: JsonDict, out: Output, link: ZygoteLink | None = None) -> None:
    """Unittest pairs first (concurrently, forked by ``link``'s zygote: one is started
    if none is given), then assert jobs one by one."""
    limits = Limits.from_json(batch.get("limits"))
    texts = [str(t) for t in batch.get("texts", [])]
    parallel = int(batch.get("parallel") or (os.cpu_count() or 1) + 1)
    pairs: list[Pair] = []
    asserts: list[JsonDict] = []
    for job in batch["jobs"]:
        try:
            kind = job.get("kind")
            if kind == "unittest":
                pairs.append(parse_pair(len(pairs), job, texts))
            elif kind == "asserts":
                asserts.append(job)
            else:
                raise ValueError(f"unknown job kind {kind!r}")
        except Exception as exc:
            _runner_failed(exc, _job_keys(job), out)
    if pairs:
        before = out.count
        reported: set[str] = set()
        out.on_result = reported.add
        try:
            link = link if link is not None else start_zygote()
            link.load(texts, batch.get("limits"))
            PairPool(pairs, limits, out, parallel, link).run()
        except Exception as exc:
            _runner_failed(exc, [p.key for p in pairs if p.key not in reported], out)
        finally:
            out.on_result = None
            if link is not None:
                link.close()
                link = None
            _cleanup_after_job()
        assert out.count - before == len(pairs)
    if link is not None:
        link.close()
    for job in asserts:
        before = out.count
        try:
            run_asserts(job, limits, out)
        except Exception as exc:
            _runner_failed(exc, list(_job_keys(job))[out.count - before :], out)
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
    link = start_zygote()
    try:
        batch = read_batch(in_fd)
    except Exception as exc:
        print(f"runner: cannot read batch: {exc!r}", file=sys.stderr)
        return 2
    finally:
        os.close(in_fd)
    out = Output(out_fd)
    run_batch(batch, out, link)
    out.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
