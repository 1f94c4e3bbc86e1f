"""What every part of the runner shares: the input/output constants, the outcome
names, per-child :class:`Limits` and how failures are described.
"""

from __future__ import annotations

import os
import signal
import struct
import unittest
from dataclasses import dataclass
from typing import Any

MAGIC = b"CODERM1\n"
HEADER = struct.Struct(">Q")
MAX_INPUT_BYTES = 1 << 30
MAX_MESSAGE_BYTES = 1 << 16
MAX_PARENT_COMPILE_CHARS = 1 << 18
DETAIL_CHARS = 300
MODULE_NAME = "__coderm_pair__"
#: A unittest job's ``globals`` value for CodeRM's executor's namespace (the driver
#: sends the same string): exactly ``unittest``, ``output`` (a fresh ``io.StringIO``)
#: and ``locals_dict`` (a fresh dict whose ``result`` entry is the verdict), no
#: ``__name__``.
REFERENCE_GLOBALS = "coderm-ref"
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
    site_packages: bool = True
    """Whether the image's site-packages (numpy, pandas) stay importable."""

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
            site_packages=bool(raw.get("site_packages", base.site_packages)),
        )


def truncate(text: str, limit: int = DETAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    try:
        return truncate(f"{type(exc).__name__}: {exc}")
    except BaseException:  # a hostile __str__
        return truncate(type(exc).__name__)


def describe_status(status: int | None) -> str:
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
