"""The zygote, which forks every pair, and a pair's process: each distinct text
compiled once, the module run in a fresh namespace (strict, or CodeRM's executor's),
the verdict read from it and reported on the shared result socket signed with the
pair's nonce.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import functools
import gc
import io
import json
import os
import resource
import select
import socket
import sys
import unittest
import warnings
from _json import encode_basestring_ascii as _quote
from collections.abc import Callable
from types import CodeType, ModuleType
from typing import Any, NoReturn

from .common import (
    DETAIL_CHARS,
    ERROR,
    HEADER,
    MAX_PARENT_COMPILE_CHARS,
    MODULE_NAME,
    RESULT_TYPES,
    JsonDict,
    Limits,
    describe_exception,
)
from .containment import Clock, child_main, confine
from .integrity import Guard, Snapshot
from .warmup import WARM_UP, WARM_UP_REFERENCE

Parts = tuple[CodeType | str | None, CodeType | str]


def _compile(source: str) -> CodeType | str:
    """Compile a module; the error's description if it does not compile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return compile(source, "<coderm>", "exec", dont_inherit=True)
        except BaseException as exc:
            return describe_exception(exc)


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


def _namespace(
    reference: bool,
    module: ModuleType = unittest,
    buffer: type[io.StringIO] = io.StringIO,
    builtins_module: ModuleType = builtins,
) -> tuple[JsonDict, JsonDict]:
    """A pair's globals and the dict its verdict's ``result`` is read from.

    Strict: ``__name__`` and ``__builtins__``; ``result`` is read from the globals.
    Reference (CodeRM's executor): exactly ``unittest`` (the module), ``output`` (a
    fresh ``io.StringIO``) and ``locals_dict`` (a fresh dict), then ``__builtins__``
    as ``exec`` would add it; no ``__name__`` (it resolves to the builtins module's
    name, so an ``if __name__ == '__main__':`` block does not run). ``result`` is read
    from that dict, the object given to the pair, whatever the module later binds to
    the name ``locals_dict``.
    """
    if not reference:
        strict: JsonDict = {"__name__": MODULE_NAME, "__builtins__": builtins_module}
        return strict, strict
    found: JsonDict = {}
    ns: JsonDict = {
        "unittest": module,
        "output": buffer(),
        "locals_dict": found,
        "__builtins__": builtins_module,
    }
    return ns, found


def _pair_child(
    parts: Parts, nonce: str, probe: bool, cpu_s: int, zygote: Zygote, reference: bool = False
) -> None:
    """A pair's process (forked by the zygote, which confined itself already): run the
    module in the namespace of its mode (:func:`_namespace`), then report its verdict
    through fd 3 (the shared result socket).

    Everything used after the pair's code ran is bound to a local first.
    """
    os.setsid()
    os.closerange(4, 1 << 20)
    try:  # noqa: SIM105 - plain try: each object a fork touches costs a page copy
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    except (ValueError, OSError):
        pass
    reporter, clock, verdict, describe = Reporter(nonce), Clock(), _verdict, describe_exception
    snapshot = zygote.snapshot
    zygote.guard.report = reporter.taint
    ns, found = _namespace(reference)
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
    reporter.send(phase="test", ms=ms, **verdict(found, snapshot))


def _verdict(
    ns: JsonDict,
    snapshot: Snapshot,
    lookup: Callable[[JsonDict, str], object] = dict.get,
    result_types: tuple[type, ...] = RESULT_TYPES,
    list_type: type = list,
    int_type: type = int,
    str_type: type = str,
    get_type: Callable[[object], type] = type,
    get_vars: Callable[[object], dict[str, Any]] = vars,
    length: Callable[[Any], int] = len,
) -> dict[str, str | float | bool | None]:
    """The pair's verdict from ``ns`` (its globals, or in reference mode the dict given
    to it as ``locals_dict``): ``result`` must be a genuine ``unittest`` result (exact
    type, plain lists) of an untampered unittest. Reads it with references bound when
    the runner started, never with ``wasSuccessful``. The unittest machinery is checked
    only for a would-be pass (tampering cannot turn a pass into anything better, and
    checking costs page copies)."""
    result = lookup(ns, "result")
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
    coderm, failing_reference = _namespace(True)
    exec(compile(WARM_UP_REFERENCE, "<warm-up>", "exec"), coderm)
    for _ in range(rounds):
        clock = Clock()
        clock.start()
        for reference in (False, True):
            _, found = _namespace(reference)
            reporter.send(phase="test", ms=1e3 * clock.seconds(), **_verdict(found, snapshot))
        for ns in (passing, failing, failing_reference):
            reporter.send(phase="test", ms=1e3 * clock.seconds(), **_verdict(ns, snapshot))
        reporter.send(sol=True)
        reporter.taint(ERROR, "warm-up")
        describe_exception(ValueError("warm-up"))


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
    written), then ``index probe nonce cpu_s code solution test reference`` (text
    indices, -1 for none; reference 1 for CodeRM's executor's globals, else 0).
    Messages back: ``S index pid split`` (started), ``E index detail`` (does not
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
        confine(self.texts.limits)
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
        """Fork the pair of ``request`` (``index probe nonce cpu_s code solution test
        reference``)."""
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
            reference = fields[7] == b"1"
            child_main(lambda: _pair_child(parts, nonce, probe, cpu_s, self, reference))
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
            child_main(serve)
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
