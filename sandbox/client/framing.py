"""The one wire format between the host and the runner, for every job kind.

In (the container's stdin): ``MAGIC`` + 8-byte big-endian length + zlib-compressed
JSON ``{"jobs", "texts", "parallel", "limits"}``; each distinct code text (solutions,
tests, evalplus specs and inputs) is sent once in ``texts`` and referred to by index.
Out (its stdout): one JSON line a result key ``{"key", "outcome", "tests_run",
"tests_passed", "duration_ms", "detail"}`` (plus ``value`` for expected outputs), then
the end marker ``{"done": true, "results": N, "cpu_s": S}``. The runner's side is
``sandbox/coderm_runner`` (``common.py``, ``batch.py``, ``output.py``).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.client.jobs import (
    AssertJob,
    EvalplusCheckJob,
    ExpectedJob,
    Job,
    UnittestJob,
)
from sandbox.client.results import JobResult, SandboxError
from shared.enums import Outcome

# must match sandbox/coderm_runner/common.py
MAGIC = b"CODERM1\n"
HEADER = struct.Struct(">Q")
REFERENCE_GLOBALS = "coderm-ref"

# limits applied by the runner to every child process (see the runner's Limits)
ADDRESS_SPACE_MB = 2048
FILE_SIZE_MB = 16
OPEN_FILES = 256
GRACE_S = 0.02

MAX_STDOUT_BYTES = 64 << 20
"""The most a batch's results may take on stdout ..."""
MAX_EXPECTED_STDOUT_BYTES = 1 << 30
"""... unless it computes expected outputs, which may be large."""

# a worse outcome wins when a key is reported twice (a forged line cannot add a pass)
_SEVERITY = {
    Outcome.PASS: 0,
    Outcome.FAIL: 1,
    Outcome.ERROR: 2,
    Outcome.TIMEOUT: 3,
    Outcome.CRASH: 4,
    Outcome.SANDBOX_ERROR: 5,
}


class _Texts:
    """Distinct code texts of a batch, each sent once and referred to by index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.index.setdefault(text, len(self.index))


def _unittest_json(job: UnittestJob, texts: _Texts) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "unittest",
        "key": job.key,
        "time_limit_s": job.time_limit_s,
        "kill_after_s": job.kill_after_s,
    }
    parts = job.parts()
    if parts is None:
        out["code"] = texts(job.code)
    else:
        out["solution"], out["test"] = texts(parts[0]), texts(parts[1])
    if job.adaptive is not None:
        out["adaptive"] = job.adaptive.model_dump()
    if job.reference_globals:
        out["globals"] = REFERENCE_GLOBALS
    return out


def job_json(job: Job, texts: _Texts) -> dict[str, Any]:
    """A job as the runner reads it (its ``kind`` picks the runner's code path)."""
    if isinstance(job, UnittestJob):
        return _unittest_json(job, texts)
    if isinstance(job, AssertJob):
        return {
            "kind": "asserts",
            "key": job.key,
            "setup": job.setup,
            "checks": [{"key": c.key, "code": c.code} for c in job.checks],
            "time_limit_s": job.time_limit_s,
            "setup_time_limit_s": job.setup_time_limit_s,
        }
    if isinstance(job, EvalplusCheckJob):
        return {
            "kind": "evalplus_check",
            "key": job.key,
            "solution": texts(job.solution),
            "checks": [{"key": c.key, "spec": texts(c.spec)} for c in job.checks],
            "time_limit_s": job.time_limit_s,
            "setup_time_limit_s": job.setup_time_limit_s,
        }
    return _expected_json(job, texts)


def _expected_json(job: ExpectedJob, texts: _Texts) -> dict[str, Any]:
    return {
        "kind": "evalplus_expected",
        "key": job.key,
        "task_id": job.task_id,
        "code": texts(job.code),
        "entry_point": job.entry_point,
        "dataset": job.dataset,
        "atol": job.atol,
        "base_input": texts(job.base_input),
        "plus_input": texts(job.plus_input),
        "output_not_none": job.output_not_none,
        "timeout_s": job.timeout_s,
    }


def encode_batch(
    jobs: Sequence[Job],
    parallel: int | None = None,
    site_packages: bool = True,
) -> bytes:
    """The runner's stdin payload: magic, 8-byte length, zlib-compressed JSON.

    ``parallel``: how many unittest pairs the runner runs at once (its default: the
    container's CPUs + 1); ``site_packages``: whether the batch's code may import the
    image's numpy and pandas (expected outputs are always computed without them).
    """
    texts = _Texts()
    encoded = [job_json(j, texts) for j in jobs]
    batch = {
        "jobs": encoded,
        "texts": list(texts.index),
        "parallel": parallel,
        "limits": {
            "address_space_mb": ADDRESS_SPACE_MB,
            "file_size_mb": FILE_SIZE_MB,
            "open_files": OPEN_FILES,
            "grace_s": GRACE_S,
            "site_packages": site_packages,
        },
    }
    data = zlib.compress(json.dumps(batch).encode(), 6)
    return MAGIC + HEADER.pack(len(data)) + data


def decode_batch(payload: bytes) -> dict[str, Any]:
    """The batch object of an :func:`encode_batch` payload (as the runner reads it)."""
    if payload[: len(MAGIC)] != MAGIC:
        raise ValueError("bad batch header")
    (length,) = HEADER.unpack_from(payload, len(MAGIC))
    start = len(MAGIC) + HEADER.size
    batch: dict[str, Any] = json.loads(zlib.decompress(payload[start : start + length]))
    return batch


def max_stdout_bytes(jobs: Sequence[Job]) -> int:
    """How much stdout a batch's results may take."""
    if any(isinstance(j, ExpectedJob) for j in jobs):
        return MAX_EXPECTED_STDOUT_BYTES
    return MAX_STDOUT_BYTES


@dataclass(frozen=True)
class JsonLines:
    """The records of a container's stdout and whether its end marker was among them."""

    records: list[dict[str, Any]]
    done: bool


def read_json_lines(stdout: bytes) -> JsonLines:
    """Every JSON object line of ``stdout`` (blank lines skipped) except the end marker
    ``{"done": true, ...}``, and whether that marker was seen.

    Raises ValueError naming the line when a line is not a JSON object.
    """
    records: list[dict[str, Any]] = []
    done = False
    for raw in stdout.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"unparsable line {raw[:200]!r}: {exc}") from exc
        if not isinstance(line, dict):
            raise ValueError(f"unparsable line {raw[:200]!r}: not an object")
        if line.get("done") is True:
            done = True
        else:
            records.append(line)
    return JsonLines(records, done)


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _job_result(line: dict[str, Any]) -> JobResult:
    try:
        key = line["key"]
        outcome = Outcome(line["outcome"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"runner output line {str(line)[:200]}: {exc!r}") from exc
    detail, value = line.get("detail"), line.get("value")
    return JobResult(
        key=key,
        outcome=outcome,
        tests_run=_opt_int(line.get("tests_run")),
        tests_passed=_opt_int(line.get("tests_passed")),
        duration_ms=_opt_float(line.get("duration_ms")),
        detail=detail if isinstance(detail, str) else None,
        value=value if isinstance(value, dict) else None,
    )


def parse_output(stdout: bytes, expected: Sequence[str]) -> dict[str, JobResult]:
    """Parse the runner's JSON lines; SandboxError unless every key got a result."""
    wanted = set(expected)
    try:
        lines = read_json_lines(stdout)
    except ValueError as exc:
        raise SandboxError(f"runner output: {exc}") from exc
    results: dict[str, JobResult] = {}
    for line in lines.records:
        result = _job_result(line)
        if result.key not in wanted:
            raise SandboxError(f"runner reported an unknown key {result.key!r}")
        previous = results.get(result.key)
        if previous is not None and _SEVERITY[previous.outcome] >= _SEVERITY[result.outcome]:
            continue
        results[result.key] = result
    if not lines.done:
        raise SandboxError("runner output has no end marker")
    missing = wanted - results.keys()
    if missing:
        raise SandboxError(f"runner output lacks {len(missing)} results, e.g. {min(missing)!r}")
    return results


def runner_cpu_seconds(stdout: bytes) -> float:
    """CPU seconds the runner reported using (its end marker), 0 if it did not."""
    tail = stdout[stdout.rfind(b"\n", 0, max(len(stdout) - 1, 0)) + 1 :]
    try:
        line = json.loads(tail)
    except ValueError:
        return 0.0
    used = line.get("cpu_s") if isinstance(line, dict) else None
    return float(used) if isinstance(used, int | float) else 0.0
