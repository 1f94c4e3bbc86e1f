"""Run batches of unit-test executions in a locked-down Docker container.

One container per batch, running ``sandbox/runner.py`` (the package
``sandbox/coderm_runner``: see there for the verdict rules), which runs up to
``parallel`` unittest pairs at once. Transport: the batch goes in through the
container's stdin over a hijacked ``attach`` connection as a length-prefixed,
zlib-compressed JSON payload (so no EOF or half-close is needed), each distinct code
text once; the results come back as JSON lines on the same connection's stdout. The
container is always force-deleted afterwards, also on errors and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer

from services.executor.json_lines import read_json_lines
from shared.core.profiles import SANDBOX_VERSION, AdaptiveLimit
from shared.enums import Outcome
from shared.settings import SandboxSettings

LABEL = "coderm.sandbox"
DEADLINE_LABEL = f"{LABEL}.deadline"
RUNNER_PATH = "/opt/coderm/runner.py"
ENTRYPOINT = ["python3", "-I", "-S", RUNNER_PATH]

# must match sandbox/coderm_runner/common.py
_MAGIC = b"CODERM1\n"
_HEADER = struct.Struct(">Q")
REFERENCE_GLOBALS = "coderm-ref"

# limits applied by the runner to every child process (see runner.Limits)
ADDRESS_SPACE_MB = 2048
FILE_SIZE_MB = 16
OPEN_FILES = 256
GRACE_S = 0.02

MAX_STDOUT_BYTES = 64 << 20
MAX_STDERR_BYTES = 64 << 10

# a worse outcome wins when a key is reported twice (a forged line cannot add a pass)
_SEVERITY = {
    Outcome.PASS: 0,
    Outcome.FAIL: 1,
    Outcome.ERROR: 2,
    Outcome.TIMEOUT: 3,
    Outcome.CRASH: 4,
    Outcome.SANDBOX_ERROR: 5,
}


@dataclass(frozen=True)
class UnittestJob:
    """A CodeRM pair: solution + unit test + driver, run as one module.

    When ``solution_chars`` is set, ``code`` is ``code[:solution_chars]`` (the solution)
    + two newlines + the test: the runner then compiles each distinct solution and test
    once, and a solution that fails on its own fails its other pairs without running
    them (see :func:`pair_job`).

    ``reference_globals``: run the module in CodeRM's executor's namespace (``unittest``,
    a fresh ``output`` StringIO and a fresh ``locals_dict``, no ``__name__``) and take
    the verdict from ``locals_dict['result']``; by default (strict) the module runs as
    ``__coderm_pair__`` and its module-level ``result`` is the verdict.
    """

    key: str
    code: str
    time_limit_s: float
    kill_after_s: float
    solution_chars: int | None = None
    adaptive: AdaptiveLimit | None = None
    reference_globals: bool = False

    def parts(self) -> tuple[str, str] | None:
        """(solution, test) if the job is split, else None."""
        n = self.solution_chars
        if n is None or self.code[n : n + 2] != "\n\n":
            return None
        return self.code[:n], self.code[n + 2 :]


def pair_job(
    key: str,
    solution: str,
    test: str,
    time_limit_s: float,
    kill_after_s: float,
    adaptive: AdaptiveLimit | None = None,
    reference_globals: bool = False,
) -> UnittestJob:
    """The unittest job of a (solution, test) pair: the module solution + two newlines + test."""
    return UnittestJob(
        key,
        f"{solution}\n\n{test}",
        time_limit_s,
        kill_after_s,
        len(solution),
        adaptive,
        reference_globals,
    )


@dataclass(frozen=True)
class AssertCheck:
    """One CodeT assert (or block of test code) run after an AssertJob's setup."""

    key: str
    code: str


@dataclass(frozen=True)
class AssertJob:
    """A solution executed once, then its checks in order, each under its own limit."""

    key: str
    setup: str
    checks: tuple[AssertCheck, ...]
    time_limit_s: float
    setup_time_limit_s: float


@dataclass(frozen=True)
class JobResult:
    """The verdict for one unittest job or one assert check."""

    key: str
    outcome: Outcome
    tests_run: int | None
    tests_passed: int | None
    duration_ms: float | None
    detail: str | None


class SandboxError(Exception):
    """The sandbox broke (not the candidate code): the batch may be retried."""


class _Texts:
    """Distinct code texts of a batch, each sent once and referred to by index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.index.setdefault(text, len(self.index))


def _job_json(job: UnittestJob | AssertJob, texts: _Texts) -> dict[str, Any]:
    if isinstance(job, UnittestJob):
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
    return {
        "kind": "asserts",
        "key": job.key,
        "setup": job.setup,
        "checks": [{"key": c.key, "code": c.code} for c in job.checks],
        "time_limit_s": job.time_limit_s,
        "setup_time_limit_s": job.setup_time_limit_s,
    }


def result_keys(jobs: Sequence[UnittestJob | AssertJob]) -> list[str]:
    """The keys run_batch returns results for; raises ValueError on duplicates."""
    keys: list[str] = []
    for job in jobs:
        if isinstance(job, UnittestJob):
            keys.append(job.key)
        else:
            keys.extend(c.key for c in job.checks)
    if len(set(keys)) != len(keys):
        raise ValueError("result keys in a batch must be unique")
    return keys


def encode_batch(
    jobs: Sequence[UnittestJob | AssertJob],
    parallel: int | None = None,
    site_packages: bool = True,
) -> bytes:
    """The runner's stdin payload: magic, 8-byte length, zlib-compressed JSON.

    ``parallel``: how many unittest pairs the runner runs at once (its default: the
    container's CPUs + 1); ``site_packages``: whether the batch's code may import the
    image's numpy and pandas.
    """
    texts = _Texts()
    encoded = [_job_json(j, texts) for j in jobs]
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
    return _MAGIC + _HEADER.pack(len(data)) + data


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def parse_output(stdout: bytes, expected: Sequence[str]) -> dict[str, JobResult]:
    """Parse the runner's JSON lines; SandboxError unless every key got a result."""
    wanted = set(expected)
    try:
        lines = read_json_lines(stdout)
    except ValueError as exc:
        raise SandboxError(f"runner output: {exc}") from exc
    results: dict[str, JobResult] = {}
    for line in lines.records:
        try:
            key = line["key"]
            outcome = Outcome(line["outcome"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxError(f"runner output line {str(line)[:200]}: {exc!r}") from exc
        if key not in wanted:
            raise SandboxError(f"runner reported an unknown key {key!r}")
        detail = line.get("detail")
        result = JobResult(
            key=key,
            outcome=outcome,
            tests_run=_opt_int(line.get("tests_run")),
            tests_passed=_opt_int(line.get("tests_passed")),
            duration_ms=_opt_float(line.get("duration_ms")),
            detail=detail if isinstance(detail, str) else None,
        )
        previous = results.get(key)
        if previous is not None and _SEVERITY[previous.outcome] >= _SEVERITY[outcome]:
            continue
        results[key] = result
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


def worst_case_seconds(jobs: Sequence[UnittestJob | AssertJob]) -> float:
    """An upper bound on a batch's run time if every pair runs into its limit.

    A unittest pair ends by its kill deadline; an assert check that is killed costs
    its limit plus the grace, and the fresh worker re-runs the solution's setup.
    """
    total = 0.0
    for job in jobs:
        if isinstance(job, UnittestJob):
            total += job.kill_after_s + GRACE_S
        else:
            per_check = job.time_limit_s + GRACE_S + job.setup_time_limit_s
            total += job.setup_time_limit_s + len(job.checks) * per_check
    return total


Progress = Callable[[int], None]
"""Called with the number of results received so far while a batch runs."""


def default_parallel(cpus: float) -> int:
    """Unittest pairs a container runs at once: its CPUs + 1, so that a pair that
    sleeps or blocks does not leave a CPU idle (run-queue waits are not counted
    against a pair's limit, so oversubscribing changes no verdict)."""
    return max(1, math.ceil(cpus)) + 1


class DockerSandbox:
    """Runs batches in throw-away containers through an aiodocker client.

    ``parallel``: unittest pairs a container runs at once (default
    :func:`default_parallel` of its CPUs). ``labels`` are added to its containers'.
    """

    def __init__(
        self,
        docker: aiodocker.Docker,
        settings: SandboxSettings,
        parallel: int | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self._docker = docker
        self._settings = settings
        self.parallel = parallel or default_parallel(settings.cpus)
        self._labels = dict(labels or {})
        self._live: set[str] = set()
        self.last_timings: dict[str, float] = {}
        """Phase durations (s) of the last batch: create, run, delete, total; and cpu,
        the CPU seconds its runner used."""

    def container_config(self, deadline: float | None = None) -> dict[str, Any]:
        """The container's create config; ``deadline`` (epoch seconds) is recorded in a
        label so that other executors know when an orphan may be removed."""
        s = self._settings
        labels = {**self._labels, LABEL: "1", f"{LABEL}.version": SANDBOX_VERSION}
        if deadline is not None:
            labels[DEADLINE_LABEL] = f"{deadline:.0f}"
        memory = s.memory_mb * (1 << 20)
        return {
            "Image": s.image,
            "Entrypoint": ENTRYPOINT,
            "Cmd": [],
            "User": s.user,
            "Env": [],
            "WorkingDir": "/tmp",
            "Labels": labels,
            "NetworkDisabled": True,
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "OpenStdin": True,
            "StdinOnce": True,
            "Tty": False,
            "HostConfig": {
                "NetworkMode": "none",
                "ReadonlyRootfs": True,
                "Tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={s.tmpfs_mb}m"},
                "Memory": memory,
                "MemorySwap": memory,
                "PidsLimit": s.pids_limit,
                "NanoCpus": int(s.cpus * 1e9),
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges"],
                "IpcMode": "private",
                "Init": False,
                "AutoRemove": False,
                "Privileged": False,
                "LogConfig": {"Type": "none", "Config": {}},
            },
        }

    async def run_batch(
        self,
        jobs: Sequence[UnittestJob | AssertJob],
        progress: Progress | None = None,
        site_packages: bool = True,
    ) -> dict[str, JobResult]:
        """Run ``jobs`` in one container: one result per unittest job and per check
        (``site_packages``: whether they may import the image's numpy and pandas).

        Raises SandboxError when the container breaks, times out or its output is
        incomplete; the whole batch may then be retried.
        """
        expected = result_keys(jobs)
        if not expected:
            return {}
        payload = encode_batch(jobs, self.parallel, site_packages)
        # limits are effective time: on less than a CPU a pair's wall time stretches
        stretch = max(1.0, 1.0 / self._settings.cpus) if self._settings.cpus > 0 else 1.0
        timeout = max(
            self._settings.container_timeout_s,
            self._settings.container_timeout_margin_s + stretch * worst_case_seconds(jobs),
        )
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        try:
            container = await self._docker.containers.create(
                self.container_config(deadline=time.time() + timeout)
            )
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot create sandbox container: {exc}") from exc
        self._live.add(container.id)
        timings["create"] = time.monotonic() - t0
        try:
            try:
                async with asyncio.timeout(timeout):
                    stdout, stderr = await self._run(container, payload, progress)
                    status = await container.wait()
            except TimeoutError as exc:
                raise SandboxError(f"sandbox exceeded {timeout:.0f} s") from exc
            except aiodocker.DockerError as exc:
                raise SandboxError(f"docker failed while running the sandbox: {exc}") from exc
            timings["run"] = time.monotonic() - t0 - timings["create"]
            code = status.get("StatusCode")
            if code != 0:
                tail = stderr[-2000:].decode(errors="replace")
                raise SandboxError(f"runner exited with status {code}: {tail}")
            results = parse_output(stdout, expected)
            timings["cpu"] = runner_cpu_seconds(stdout)
            return results
        finally:
            t1 = time.monotonic()
            await asyncio.shield(self._delete(container))
            timings["delete"] = time.monotonic() - t1
            timings["total"] = time.monotonic() - t0
            self.last_timings = timings

    async def _run(
        self, container: DockerContainer, payload: bytes, progress: Progress | None
    ) -> tuple[bytes, bytes]:
        """Attach, start, send the payload, read stdout/stderr until the runner exits."""
        stream = container.attach(stdin=True, stdout=True, stderr=True)
        try:
            async with stream:
                await container.start()
                await stream.write_in(payload)
                out = bytearray()
                err = bytearray()
                lines = 0
                while True:
                    msg = await stream.read_out()
                    if msg is None:
                        break
                    if msg.stream == 2:
                        if len(err) < MAX_STDERR_BYTES:
                            err += msg.data
                    else:
                        out += msg.data
                        if len(out) > MAX_STDOUT_BYTES:
                            raise SandboxError("runner output too large")
                        if progress is not None:
                            lines += msg.data.count(b"\n")
                            progress(lines)
                return bytes(out), bytes(err)
        except (ConnectionError, OSError) as exc:
            raise SandboxError(f"sandbox connection failed: {exc!r}") from exc

    async def _delete(self, container: DockerContainer) -> None:
        try:
            await container.delete(force=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                with contextlib.suppress(aiodocker.DockerError):
                    await container.delete(force=True)
        finally:
            self._live.discard(container.id)

    async def remove_stale_containers(self) -> int:
        """Remove sandbox containers left behind (e.g. by a crashed executor).

        Containers of this instance that are still in use are kept, and so are running
        containers before their deadline label (or, without one, younger than the
        container timeout): another executor on the same engine may own them, and they
        end by themselves. Returns how many were removed.
        """
        listed = await self._docker.containers.list(all=True, filters={"label": [f"{LABEL}=1"]})
        now = time.time()
        removed = 0
        for container in listed:
            if container.id in self._live:
                continue
            running = "State" in container and container["State"] == "running"
            created = float(container["Created"]) if "Created" in container else 0.0
            labels = container["Labels"] if "Labels" in container else {}  # noqa: SIM401 - not a dict
            deadline = float(
                labels.get(DEADLINE_LABEL) or created + self._settings.container_timeout_s
            )
            if running and now < deadline + 60:
                continue
            try:
                await container.delete(force=True)
                removed += 1
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
        return removed
