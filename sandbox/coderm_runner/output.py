"""The runner's result lines on stdout, buffered and flushed in order."""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable

from .common import FLUSH_BYTES, FLUSH_SECONDS, JsonDict, truncate
from .containment import send_message


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
        value: JsonDict | None = None,
    ) -> None:
        """One result line; ``value`` (a job kind's own data, e.g. expected outputs) is
        added only when given."""
        line: JsonDict = {
            "key": key,
            "outcome": outcome,
            "tests_run": tests_run,
            "tests_passed": tests_passed,
            "duration_ms": None if duration_ms is None else round(duration_ms, 3),
            "detail": None if detail is None else truncate(detail),
        }
        if value is not None:
            line["value"] = value
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
        send_message(self.fd, {"done": True, "results": self.count, "cpu_s": round(used, 3)})
