"""Computes canonical solutions' expected outputs inside the sandbox (stdlib only).

The runner calls :func:`run_problem` for each ``evalplus_expected`` job of a batch
(:mod:`.evalplus_jobs`); the comparison module :mod:`.evalplus_check` gives the digest
and oracle rules.

Each problem runs in a forked child, as evalplus's ``trusted_exec`` does it for base and
plus inputs separately: the canonical code is executed in a fresh namespace, each input
is deep-copied and passed as ``fn(*input)``, its wall time measured around the call
alone; for ``output_not_none`` tasks the output becomes ``output is not None``.
``collections``' dict types become plain dicts (Mbpp/88 returns a ``Counter``; a solution's
dict compares the same against either). The outputs must then be plain data (see
``shared/core/pyliteral.py``) and are returned as the ``repr`` of their list, where an output
larger than ``LITERAL_CHARS`` whose input is decided by ``out == exp`` alone is ``None``
and its :func:`digest` is given instead. The child sees the standard library only (the
image's site-packages are taken off ``sys.path``) and gets no rlimits beyond the
container's own.
Result: ``{"task_id", "base", "plus", "base_ms", "plus_ms", "base_digests",
"plus_digests"}`` or ``{"task_id", "error"}``.
"""

import collections
import copy
import json
import math
import os
import select
import signal
import sys
import time
from typing import Any

from .evalplus_check import FLOAT_ATOL, LITERAL_CHARS, digest, is_floats, special_oracle

PLAIN = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set, frozenset)


def _decode(text: str) -> Any:
    names = {"inf": math.inf, "nan": math.nan, "set": set, "frozenset": frozenset}
    return eval(text, {"__builtins__": {}}, names)


def _plain(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) not in PLAIN:
            return False
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return True


def _as_plain(value: Any) -> Any:
    """``collections``' dict types (``Counter``: Mbpp/88) as plain dicts, recursively."""
    kind = type(value)
    if kind in (collections.Counter, collections.OrderedDict, collections.defaultdict, dict):
        return {_as_plain(k): _as_plain(v) for k, v in value.items()}
    if kind in (list, tuple):
        return kind(_as_plain(v) for v in value)
    return value


def _larger_than(value: object, limit: int) -> bool:
    """Whether ``len(repr(value))`` may exceed ``limit`` (a cheap over-estimate that stops
    as soon as it passes the limit; no quadratic int -> str)."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += 4 * len(item) + 3
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 32
    return total > limit


def _shipped(problem: dict[str, Any], outputs: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """The outputs with large ones decided by ``==`` alone replaced by their digest."""
    atol = float(problem["atol"])
    special = special_oracle(problem["entry_point"], problem["dataset"])
    literal: list[Any] = []
    digests: dict[str, str] = {}
    for i, value in enumerate(outputs):
        if atol == 0 and is_floats(value):
            atol = FLOAT_ATOL
        if atol == 0 and not special and _larger_than(value, LITERAL_CHARS):
            found = digest(value)
            if found is not None:
                digests[str(i)] = found
                literal.append(None)
                continue
        literal.append(value)
    return literal, digests


def _outputs(problem: dict[str, Any], kind: str) -> dict[str, Any]:
    scope: dict[str, Any] = {"__name__": "__coderm_expected__"}
    exec(compile(problem["code"], "<canonical>", "exec"), scope)
    fn = scope[problem["entry_point"]]
    outputs: list[Any] = []
    times: list[float] = []
    for inp in _decode(problem[f"{kind}_input"]):
        args = copy.deepcopy(inp)
        start = time.perf_counter()
        value = fn(*args)
        times.append((time.perf_counter() - start) * 1000.0)
        outputs.append(value is not None if problem["output_not_none"] else value)
    if not _plain(outputs):
        outputs = [_as_plain(v) for v in outputs]
    if not _plain(outputs):
        kinds = sorted({type(v).__name__ for v in outputs})
        raise TypeError(f"{kind} outputs are not plain data: {kinds}")
    literal, digests = _shipped(problem, outputs)
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        text = repr(literal)
    finally:
        sys.set_int_max_str_digits(previous)
    return {kind: text, f"{kind}_ms": times, f"{kind}_digests": digests}


def _child(problem: dict[str, Any], fd: int) -> None:
    result: dict[str, Any] = {"task_id": problem["task_id"]}
    try:
        for kind in ("base", "plus"):
            result.update(_outputs(problem, kind))
    except BaseException as exc:
        result = {"task_id": problem["task_id"], "error": f"{type(exc).__name__}: {exc}"[:500]}
    data = json.dumps(result).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        signal_number = os.WTERMSIG(status)
        hint = " (out of memory?)" if signal_number == signal.SIGKILL else ""
        return f"killed by signal {signal_number}{hint}"
    return f"exited with status {os.WEXITSTATUS(status)} without a result"


def _standard_library_only() -> None:
    """Take the image's site-packages off ``sys.path`` (canonical code sees the standard
    library only)."""
    sys.path[:] = [
        p for p in sys.path if os.path.basename(p) not in ("site-packages", "dist-packages")
    ]


def _run_one(problem: dict[str, Any], timeout_s: float) -> bytes:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            _standard_library_only()
            _child(problem, write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if timed_out or not data.endswith(b"\n"):
        why = f"timed out after {timeout_s:g} s" if timed_out else _death(status)
        return json.dumps({"task_id": problem["task_id"], "error": why}).encode() + b"\n"
    return data


def run_problem(problem: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Compute one problem's outputs in a forked child within ``timeout_s``: its result
    object (see the module docstring)."""
    result: dict[str, Any] = json.loads(_run_one(problem, timeout_s))
    return result
