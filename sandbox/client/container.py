"""Run a batch of jobs in one locked-down, throw-away Docker container.

The container runs ``sandbox/runner.py`` (the package ``sandbox/coderm_runner``: see
there for the verdict rules), which runs up to ``parallel`` unittest pairs at once.
The batch goes in through the container's stdin over a hijacked ``attach`` connection
(:mod:`sandbox.client.framing`: no EOF or half-close is needed); the results come back
as JSON lines on the same connection's stdout. The container is always force-deleted
afterwards, also on errors and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer
from aiodocker.stream import Stream

from sandbox.client.framing import (
    GRACE_S,
    encode_batch,
    max_stdout_bytes,
    parse_output,
    runner_cpu_seconds,
)
from sandbox.client.jobs import AssertJob, EvalplusCheckJob, ExpectedJob, Job, result_keys
from sandbox.client.results import BatchResult, JobResult, RunClock, SandboxError
from shared.core.profiles import SANDBOX_VERSION
from shared.settings import SandboxSettings

LABEL = "coderm.sandbox"
DEADLINE_LABEL = f"{LABEL}.deadline"
RUNNER_PATH = "/opt/coderm/runner.py"
ENTRYPOINT = ["python3", "-I", "-S", RUNNER_PATH]
MAX_STDERR_BYTES = 64 << 10

Progress = Callable[[int], None]
"""Called with the number of results received so far while a batch runs."""


@dataclass(frozen=True)
class StartedContainer:
    """A created and started sandbox container, its runner waiting for a batch on the
    attached ``stream``; ``started_at``: ``time.monotonic()`` when it was ready."""

    container: DockerContainer
    stream: Stream
    started_at: float


def batch_timeout_s(settings: SandboxSettings, jobs: Sequence[Job]) -> float:
    """How long a sandbox run of ``jobs`` may take before it is killed, on either
    backend: the batch's worst case (stretched on less than a CPU: limits are effective
    time) plus the margin, and never less than the container time-out."""
    cpus = settings.cpus
    stretch = max(1.0, 1.0 / cpus) if cpus > 0 else 1.0
    return max(
        settings.container_timeout_s,
        settings.container_timeout_margin_s + stretch * worst_case_seconds(jobs),
    )


def worst_case_seconds(jobs: Sequence[Job]) -> float:
    """An upper bound on a batch's run time if every job runs into its limit.

    A unittest pair ends by its kill deadline; an assert or evalplus check that is
    killed costs its limit plus the grace, and the fresh worker re-runs the setup; an
    expected-outputs job ends by its time-out.
    """
    total = 0.0
    for job in jobs:
        if isinstance(job, AssertJob | EvalplusCheckJob):
            per_check = job.time_limit_s + GRACE_S + job.setup_time_limit_s
            total += job.setup_time_limit_s + len(job.checks) * per_check
        elif isinstance(job, ExpectedJob):
            total += job.timeout_s
        else:
            total += job.kill_after_s + GRACE_S
    return total


def default_parallel(cpus: float) -> int:
    """Unittest pairs a container runs at once: its CPUs + 1, so that a pair that
    sleeps or blocks does not leave a CPU idle (run-queue waits are not counted
    against a pair's limit, so oversubscribing changes no verdict)."""
    return max(1, math.ceil(cpus)) + 1


@contextlib.asynccontextmanager
async def open_sandbox(
    settings: SandboxSettings,
    parallel: int | None = None,
    labels: dict[str, str] | None = None,
) -> AsyncIterator[DockerSandbox]:
    """A :class:`DockerSandbox` on its own connection to the Docker engine of
    ``settings.docker_url``, closed on exit (for callers that hold no Docker client)."""
    docker = aiodocker.Docker(url=settings.docker_url)
    try:
        yield DockerSandbox(docker, settings, parallel, labels)
    finally:
        await docker.close()


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
        self._deleting: set[asyncio.Task[None]] = set()

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

    def timeout_s(self, jobs: Sequence[Job]) -> float:
        """How long a container may run the batch before it is killed
        (:func:`batch_timeout_s`)."""
        return batch_timeout_s(self._settings, jobs)

    async def run_batch(
        self,
        jobs: Sequence[Job],
        progress: Progress | None = None,
        site_packages: bool = True,
    ) -> BatchResult:
        """Run ``jobs`` in one container: one result per unittest job, per check and per
        expected-outputs job (``site_packages``: whether they may import the image's
        numpy and pandas), with the run's timings.

        Raises SandboxError (carrying the run's timings) when the container breaks,
        times out or its output is incomplete; the whole batch may then be retried.
        """
        if not result_keys(jobs):
            return BatchResult({})
        clock = RunClock()
        started = await self.start_container(time.time() + self.timeout_s(jobs), clock)
        return await self.run_started(started, jobs, progress, site_packages, clock)

    async def start_container(self, deadline: float, clock: RunClock) -> StartedContainer:
        """Create and start a container whose runner (and its zygote) then waits for a
        batch on stdin; its create and start time go to ``clock.create``.

        ``deadline`` (epoch seconds) goes in its label (see :meth:`container_config`).
        Raises SandboxError when the engine cannot create or start it (nothing is left
        behind).
        """
        try:
            container = await self._docker.containers.create(self.container_config(deadline))
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot create sandbox container: {exc}", clock.timings()) from exc
        self._live.add(container.id)
        clock.created = True
        stream = container.attach(stdin=True, stdout=True, stderr=True)
        try:
            await stream.__aenter__()
            await container.start()
        except BaseException as exc:
            await stream.close()
            await asyncio.shield(self._delete(container))
            clock.create = time.monotonic() - clock.start
            if isinstance(exc, aiodocker.DockerError | ConnectionError | OSError):
                message = f"cannot start sandbox container: {exc!r}"
                raise SandboxError(message, clock.timings()) from exc
            raise
        clock.create = time.monotonic() - clock.start
        return StartedContainer(container, stream, time.monotonic())

    async def run_started(
        self,
        started: StartedContainer,
        jobs: Sequence[Job],
        progress: Progress | None,
        site_packages: bool,
        clock: RunClock,
        defer_delete: bool = False,
    ) -> BatchResult:
        """Send ``jobs`` to a started container, read its results, and delete it (also on
        errors and cancellation): a container runs one batch, never two.

        ``defer_delete``: once the runner has ended well, delete the container in the
        background (:meth:`drain` waits for it) instead of before returning, for callers
        whose latency counts; a run that broke is deleted before this returns.
        """
        payload = encode_batch(jobs, self.parallel, site_packages)
        ended = False
        try:
            try:
                results, stdout = await self._run(started, payload, progress, jobs, clock)
                ended = True
            finally:
                deleting = time.monotonic()
                await started.stream.close()
                if ended and defer_delete:
                    task = asyncio.create_task(self._delete(started.container))
                    self._deleting.add(task)
                    task.add_done_callback(self._deleting.discard)
                else:
                    await asyncio.shield(self._delete(started.container))
                clock.delete = time.monotonic() - deleting
        except SandboxError as exc:
            exc.timings = clock.timings()
            raise
        clock.cpu = runner_cpu_seconds(stdout)
        return BatchResult(results, clock.timings())

    async def drain(self) -> None:
        """Wait for the deletes :meth:`run_started` left in the background."""
        while self._deleting:
            await asyncio.gather(*self._deleting, return_exceptions=True)

    async def discard(self, started: StartedContainer) -> None:
        """Delete a started container that will run nothing."""
        await started.stream.close()
        await asyncio.shield(self._delete(started.container))

    async def _run(
        self,
        started: StartedContainer,
        payload: bytes,
        progress: Progress | None,
        jobs: Sequence[Job],
        clock: RunClock,
    ) -> tuple[dict[str, JobResult], bytes]:
        """Run the batch to the runner's end (timed in ``clock.run``); its results and
        stdout."""
        timeout = self.timeout_s(jobs)
        begun = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await self._exchange(
                    started.stream, payload, progress, max_stdout_bytes(jobs)
                )
                status = await started.container.wait()
        except TimeoutError as exc:
            raise SandboxError(f"sandbox exceeded {timeout:.0f} s") from exc
        except aiodocker.DockerError as exc:
            raise SandboxError(f"docker failed while running the sandbox: {exc}") from exc
        finally:
            clock.run = time.monotonic() - begun
        code = status.get("StatusCode")
        if code != 0:
            tail = stderr[-2000:].decode(errors="replace")
            raise SandboxError(f"runner exited with status {code}: {tail}")
        return parse_output(stdout, result_keys(jobs)), stdout

    @staticmethod
    async def _exchange(
        stream: Stream, payload: bytes, progress: Progress | None, limit: int
    ) -> tuple[bytes, bytes]:
        """Send the payload, read stdout/stderr until the runner exits."""
        try:
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
                    if len(out) > limit:
                        raise SandboxError("runner output too large")
                    if progress is not None:
                        lines += msg.data.count(b"\n")
                        progress(lines)
            return bytes(out), bytes(err)
        except (ConnectionError, OSError, RuntimeError) as exc:
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
                if exc.status not in (404, 409):  # gone, or being removed by another
                    raise
        return removed
