"""Reading a batch, running its jobs (unittest pairs, then assert and evalplus check
jobs, then evalplus expected-output jobs) and the runner's ``main``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
import zlib
from collections.abc import Callable, Iterator

from . import evalplus_jobs
from .asserts import run_asserts
from .common import HEADER, MAGIC, MAX_INPUT_BYTES, SANDBOX_ERROR, JsonDict, Limits
from .containment import PR_SET_DUMPABLE, PRCTL, cleanup_after_job
from .integrity import Snapshot
from .output import Output
from .pool import Pair, PairPool, parse_pair
from .warmup import warm_up
from .zygote import ZygoteLink


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


def _job_keys(job: object) -> Iterator[str]:
    if not isinstance(job, dict):
        return
    if job.get("kind") in ("asserts", evalplus_jobs.CHECK) and isinstance(job.get("checks"), list):
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


def _sort_jobs(
    jobs: list[JsonDict], texts: list[str], out: Output
) -> tuple[list[Pair], list[JsonDict], list[JsonDict]]:
    """The batch's unittest pairs, assert jobs (``evalplus_check`` jobs made into assert
    jobs, in order among them) and ``evalplus_expected`` jobs; a malformed job gets
    sandbox_error at once."""
    pairs: list[Pair] = []
    asserts: list[JsonDict] = []
    expected: list[JsonDict] = []
    for job in jobs:
        try:
            kind = job.get("kind")
            if kind == "unittest":
                pairs.append(parse_pair(len(pairs), job, texts))
            elif kind == "asserts":
                asserts.append(job)
            elif kind == evalplus_jobs.CHECK:
                asserts.append(evalplus_jobs.as_asserts(job, texts))
            elif kind == evalplus_jobs.EXPECTED:
                expected.append(job)
            else:
                raise ValueError(f"unknown job kind {kind!r}")
        except Exception as exc:
            _runner_failed(exc, _job_keys(job), out)
    return pairs, asserts, expected


def _one_by_one(jobs: list[JsonDict], run: Callable[[JsonDict], None], out: Output) -> None:
    """Run ``jobs`` in order, cleaning up after each; the keys of a job the runner
    failed on that it did not report get sandbox_error."""
    for job in jobs:
        before = out.count
        try:
            run(job)
        except Exception as exc:
            _runner_failed(exc, list(_job_keys(job))[out.count - before :], out)
        finally:
            cleanup_after_job()


def run_batch(batch: JsonDict, out: Output, link: ZygoteLink | None = None) -> None:
    """Unittest pairs first (concurrently, forked by ``link``'s zygote: one is started
    if none is given), then assert jobs (``evalplus_check`` jobs among them) one by one
    in their order, then ``evalplus_expected`` jobs one by one."""
    limits = Limits.from_json(batch.get("limits"))
    texts = [str(t) for t in batch.get("texts", [])]
    parallel = int(batch.get("parallel") or (os.cpu_count() or 1) + 1)
    pairs, asserts, expected = _sort_jobs(batch["jobs"], texts, out)
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
            cleanup_after_job()
        assert out.count - before == len(pairs)
    if link is not None:
        link.close()
    _one_by_one(asserts, lambda job: run_asserts(job, limits, out), out)
    _one_by_one(expected, lambda job: evalplus_jobs.run_expected(job, texts, out), out)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if PRCTL is not None:
        PRCTL(PR_SET_DUMPABLE, 0)
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
