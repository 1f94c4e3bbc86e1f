"""Run a batch of jobs under bubblewrap, in a cgroup of its own: the sandbox backend
that needs no Docker daemon (``CODERM_SANDBOX__BACKEND=bwrap``).

The same runner as :class:`~sandbox.client.container.DockerSandbox` runs, from the
same image's file system (a directory, ``SandboxSettings.rootfs_dir``: ``rootfs/``
and the image's ``env``, exported by deploy/local/up.sh), with the same batch on its
stdin and the same JSON lines on its stdout (:mod:`sandbox.client.framing`), so the
verdicts are the same. The sandbox is started as a chain of ``exec``s, one process
(:func:`command`):

1. ``sh`` writes itself into the run's cgroup (:mod:`sandbox.client.cgroups`: memory
   with swap, pids and CPU quota as Docker's), so everything after it is counted;
2. ``unshare --mount`` gives it a private mount namespace, where ``sh`` mounts the
   run's ``/tmp`` and ``/dev/shm``: tmpfs of Docker's sizes and flags (``noexec``,
   ``nosuid``, ``nodev``, mode 1777), which exist nowhere else and vanish with it;
3. ``setpriv`` drops to the sandbox's uid and gid (65534) with no groups and no
   capabilities, so the host sees the sandbox as ``nobody``;
4. ``bwrap`` (as that user, through an unprivileged user namespace) makes new user,
   pid, network, IPC, UTS and cgroup namespaces, no user namespaces further down,
   a read-only bind of the root, fresh ``/proc`` and ``/dev``, the two tmpfs bound
   over ``/tmp`` and ``/dev/shm``, the run's pids cgroup read-only where the runner
   reads ``pids.events``, no capabilities, a new session, the image's environment
   only, and dies with the executor;
5. the runner (``python3 -I -S /opt/coderm/runner.py``) is PID 1 of its namespace,
   as in a container (``--as-pid-1``).

The host kills every process of the cgroup at the batch's deadline, on cancellation
and at the end of every run, then removes the cgroup. In this mode (``cgroup``) the
executor runs as root (it makes cgroups and mounts); bwrap itself does not.

Without root, or as a root that cannot write the cgroup tree (a pod without
privileges), the backend runs in ``rlimit`` mode (:func:`choose_mode`, logged once
when the sandbox is made), a chain that needs no privilege at all
(:func:`rlimit_command`):

1. ``setpriv`` asks for SIGKILL when the executor dies (and, as root, drops to the
   sandbox's user first);
2. ``unshare --user --mount`` makes an unprivileged user namespace (the executor's
   user mapped to the sandbox's) with a private mount namespace, where ``sh`` mounts
   ``/tmp`` and ``/dev/shm`` exactly as above;
3. ``setpriv`` drops the capabilities the namespace gave;
4. ``bwrap`` as above, without the pids cgroup under ``/sys``;
5. the image's Python sets the rlimits of :mod:`sandbox.client.rlimits` (processes,
   address space, CPU time, file size) inside the sandbox's own user namespace, then
   execs the runner, PID 1 as before.

The sandbox dies with its ``bwrap`` process (``--die-with-parent``: PID 1 gets
SIGKILL, and with it its whole pid namespace), which dies with the executor; the host
kills it at the batch's deadline and on cancellation. The pod's cgroup bounds the
total memory and CPU of all sandboxes (docs/KUBERNETES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from sandbox.client.cgroups import (
    Cgroup,
    CgroupPlan,
    cgroup_tree_writable,
    cgroup_version,
    limits_of,
    plan_cgroup,
    stale_plans,
)
from sandbox.client.cgroups import cgroup_name as new_cgroup_name
from sandbox.client.container import (
    ENTRYPOINT,
    MAX_STDERR_BYTES,
    Progress,
    batch_timeout_s,
    default_parallel,
)
from sandbox.client.framing import encode_batch, max_stdout_bytes, parse_output, runner_cpu_seconds
from sandbox.client.jobs import Job, result_keys
from sandbox.client.results import BatchResult, JobResult, RunClock, SandboxError
from sandbox.client.rlimits import Rlimits, rlimits_of, shim_command
from shared.settings import SandboxSettings

log = structlog.get_logger(__name__)

Mode = Literal["cgroup", "rlimit"]
"""How a run is limited: a cgroup of its own (root with a writable cgroup tree), or
rlimits inside its user namespace under the pod's cgroup (see the module)."""

SCRATCH = "/run/coderm-sandbox"
"""Mount points of every run's ``/tmp`` and ``/dev/shm`` tmpfs (mounted only in the
run's private mount namespace; empty directories on the host)."""
SHM_MB = 64
"""Docker's default ``/dev/shm`` size."""
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_HOSTNAME = "sandbox"
EXIT_SETUP = 125
"""The wrapper's status when it could not join the cgroup or mount the scratch dirs."""

# $1: how many cgroup.procs files follow; the shell writes itself into each, then
# execs the rest of its arguments
JOIN_CGROUP = (
    'n="$1"; shift; while [ "$n" -gt 0 ]; do echo 0 >"$1" || exit 125; shift; n=$((n - 1)); '
    'done; exec "$@"'
)
# $1 $2: options and mount point of /tmp; $3 $4: of /dev/shm; then the command
MOUNT_SCRATCH = (
    'mount -t tmpfs -o "$1" coderm-tmp "$2" && mount -t tmpfs -o "$3" coderm-shm "$4" '
    '|| exit 125; shift 4; exec "$@"'
)


@dataclass(frozen=True)
class Mounts:
    """Where the run's scratch tmpfs are mounted before bwrap binds them."""

    tmp: str = f"{SCRATCH}/tmp"
    shm: str = f"{SCRATCH}/shm"


def tmpfs_options(size_mb: int) -> str:
    """Docker's ``--tmpfs`` flags for the sandbox's scratch dirs."""
    return f"size={size_mb}m,mode=1777,nosuid,nodev,noexec"


def parse_user(user: str) -> tuple[int, int]:
    """``uid:gid`` (or ``uid``: gid the same) of ``SandboxSettings.user``, numeric."""
    uid, _, gid = user.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError as exc:
        raise ValueError(f"the bwrap backend needs a numeric user, got {user!r}") from exc


def read_env(rootfs_dir: str) -> list[tuple[str, str]]:
    """The image's environment (``<rootfs_dir>/env``, one ``NAME=value`` a line)."""
    pairs: list[tuple[str, str]] = []
    for line in Path(rootfs_dir, "env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs


def choose_mode(version: int | None = None) -> tuple[Mode, str]:
    """``cgroup`` when this process can make the runs' cgroups, else ``rlimit``; and
    why, for the log line."""
    if os.geteuid() != 0:
        return "rlimit", "not root"
    if not cgroup_tree_writable(cgroup_version() if version is None else version):
        return "rlimit", "the cgroup tree is not writable"
    return "cgroup", "root with a writable cgroup tree"


def bwrap_args(
    settings: SandboxSettings,
    rootfs: str,
    env: Sequence[tuple[str, str]],
    cgroup: CgroupPlan | None,
    mounts: Mounts = Mounts(),
    entry: Sequence[str] = ENTRYPOINT,
) -> list[str]:
    """bwrap's own arguments up to and including the runner's command line (``entry``);
    the run's pids cgroup is bound under ``/sys`` when it has one."""
    uid, gid = parse_user(settings.user)
    args = [
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup namespaces
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--uid",
        str(uid),
        "--gid",
        str(gid),
        "--hostname",
        SANDBOX_HOSTNAME,
        "--ro-bind",
        rootfs,
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        mounts.tmp,
        "/tmp",
        "--bind",
        mounts.shm,
        "/dev/shm",
        "--tmpfs",
        "/sys",
        *(["--ro-bind", cgroup.pids_dir, cgroup.pids_mount] if cgroup is not None else []),
        "--remount-ro",
        "/sys",
        "--chdir",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    for name, value in env:
        args += ["--setenv", name, value]
    return [*args, "--", *entry]


def command(
    settings: SandboxSettings,
    rootfs: str,
    env: Sequence[tuple[str, str]],
    cgroup: CgroupPlan,
    mounts: Mounts = Mounts(),
) -> list[str]:
    """The whole command line of a run: join the cgroup, mount the scratch tmpfs in a
    private mount namespace, drop to the sandbox's user, bwrap (see the module)."""
    uid, gid = parse_user(settings.user)
    return [
        "/bin/sh",
        "-c",
        JOIN_CGROUP,
        "sh",
        str(len(cgroup.procs)),
        *cgroup.procs,
        "unshare",
        *scratch_mounts(settings, mounts),
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "bwrap",
        *bwrap_args(settings, rootfs, env, cgroup, mounts),
    ]


def scratch_mounts(settings: SandboxSettings, mounts: Mounts) -> list[str]:
    """``unshare``'s arguments for a private mount namespace in which the scratch
    tmpfs (``/tmp`` and ``/dev/shm`` of the sandbox) are mounted before what follows."""
    return [
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        MOUNT_SCRATCH,
        "sh",
        tmpfs_options(settings.tmpfs_mb),
        mounts.tmp,
        tmpfs_options(SHM_MB),
        mounts.shm,
    ]


def rlimit_command(
    settings: SandboxSettings,
    rootfs: str,
    env: Sequence[tuple[str, str]],
    limits: Rlimits,
    mounts: Mounts = Mounts(),
    as_root: bool = False,
) -> list[str]:
    """The whole command line of a run without a cgroup (``rlimit`` mode, see the
    module): no privilege needed; ``as_root``: drop to the sandbox's user first."""
    uid, gid = parse_user(settings.user)
    become = [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"] if as_root else []
    drop = ["--inh-caps=-all", "--bounding-set=-all"]
    return [
        "setpriv",
        "--pdeathsig=KILL",
        *become,
        "--",
        "unshare",
        "--user",
        f"--map-user={uid}",
        f"--map-group={gid}",
        "--keep-caps",
        *scratch_mounts(settings, mounts),
        "setpriv",
        *drop,
        "--",
        "bwrap",
        *bwrap_args(settings, rootfs, env, None, mounts, shim_command(limits, ENTRYPOINT)),
    ]


class BwrapSandbox:
    """Runs batches under bubblewrap in a cgroup a run, or under rlimits where no
    cgroup can be made (see the module).

    The same interface as :class:`~sandbox.client.container.DockerSandbox`
    (``run_batch``, ``parallel``, ``timeout_s``, ``remove_stale_containers``) and the
    same limits from the same settings; ``parallel`` as there. ``mode``: ``cgroup``
    or ``rlimit``, chosen by :func:`choose_mode` when not given.
    """

    def __init__(
        self,
        settings: SandboxSettings,
        parallel: int | None = None,
        mounts: Mounts = Mounts(),
        mode: Mode | None = None,
    ) -> None:
        self._settings = settings
        self.parallel = parallel or default_parallel(settings.cpus)
        self._mounts = mounts
        if mode is None:
            mode, why = choose_mode()
        else:
            why = "asked for"
        self.mode: Mode = mode
        log.info("sandbox.bwrap_mode", mode=mode, reason=why, uid=os.geteuid())

    def timeout_s(self, jobs: Sequence[Job]) -> float:
        """How long a run may take before it is killed (the Docker backend's
        :func:`~sandbox.client.container.batch_timeout_s`)."""
        return batch_timeout_s(self._settings, jobs)

    def _prepare(self) -> tuple[str, list[tuple[str, str]]]:
        """The root and the environment, after checking what the host must have."""
        if self.mode == "cgroup" and os.geteuid() != 0:
            raise SandboxError("the bwrap backend's cgroup mode needs root (cgroups, mounts)")
        for tool in ("bwrap", "unshare", "setpriv", "mount"):
            if shutil.which(tool, path=HOST_PATH) is None:
                raise SandboxError(f"the bwrap sandbox backend needs {tool} on the host")
        rootfs = os.path.join(os.path.realpath(self._settings.rootfs_dir), "rootfs")
        if not os.path.isfile(os.path.join(rootfs, ENTRYPOINT[-1].lstrip("/"))):
            raise SandboxError(f"no sandbox root file system with the runner in {rootfs}")
        try:
            env = read_env(self._settings.rootfs_dir)
        except OSError as exc:
            raise SandboxError(f"cannot read the sandbox image's environment: {exc}") from exc
        for point in (self._mounts.tmp, self._mounts.shm):
            try:
                os.makedirs(point, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise SandboxError(f"cannot make the scratch mount point {point}: {exc}") from exc
        return rootfs, env

    async def run_batch(
        self,
        jobs: Sequence[Job],
        progress: Progress | None = None,
        site_packages: bool = True,
    ) -> BatchResult:
        """Run ``jobs`` in one sandbox, as ``DockerSandbox.run_batch`` does.

        Raises SandboxError (carrying the run's timings) when the sandbox could not
        start, broke, timed out or its output is incomplete.
        """
        expected = result_keys(jobs)
        if not expected:
            return BatchResult({})
        payload = encode_batch(jobs, self.parallel, site_packages)
        clock = RunClock()
        rootfs, env = self._prepare()
        if self.mode == "rlimit":
            return await self._run_rlimited(jobs, payload, progress, rootfs, env, clock)
        plan = plan_cgroup(cgroup_version(), new_cgroup_name(), limits_of(self._settings))
        cgroup = Cgroup(plan)
        try:
            cgroup.create()
        except OSError as exc:
            raise SandboxError(
                f"cannot create the sandbox's cgroup: {exc}", clock.timings()
            ) from exc
        try:
            try:
                argv = command(self._settings, rootfs, env, plan, self._mounts)
                results, stdout = await self._run(argv, payload, progress, jobs, clock)
            finally:
                deleting = time.monotonic()
                await asyncio.shield(cgroup.remove())
                clock.delete = time.monotonic() - deleting
        except SandboxError as exc:
            exc.timings = clock.timings()
            raise
        clock.cpu = runner_cpu_seconds(stdout)
        return BatchResult(results, clock.timings())

    async def _run_rlimited(
        self,
        jobs: Sequence[Job],
        payload: bytes,
        progress: Progress | None,
        rootfs: str,
        env: list[tuple[str, str]],
        clock: RunClock,
    ) -> BatchResult:
        """A run in ``rlimit`` mode: no cgroup to make or remove; the sandbox's pid
        namespace ends with its bwrap process, which :meth:`_run` always reaps."""
        limits = rlimits_of(self._settings, self.timeout_s(jobs))
        argv = rlimit_command(
            self._settings, rootfs, env, limits, self._mounts, as_root=os.geteuid() == 0
        )
        try:
            results, stdout = await self._run(argv, payload, progress, jobs, clock)
        except SandboxError as exc:
            exc.timings = clock.timings()
            raise
        clock.cpu = runner_cpu_seconds(stdout)
        return BatchResult(results, clock.timings())

    async def _run(
        self,
        argv: list[str],
        payload: bytes,
        progress: Progress | None,
        jobs: Sequence[Job],
        clock: RunClock,
    ) -> tuple[dict[str, JobResult], bytes]:
        timeout = self.timeout_s(jobs)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": HOST_PATH},
                cwd="/",
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc
        clock.created = True
        clock.create = time.monotonic() - clock.start
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await self._communicate(
                    proc, payload, progress, max_stdout_bytes(jobs)
                )
                code = await proc.wait()
        except TimeoutError as exc:
            raise SandboxError(f"sandbox exceeded {timeout:.0f} s") from exc
        finally:
            clock.run = time.monotonic() - started
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()  # the rest: by the cgroup's remove(), or with the pid namespace
                await asyncio.shield(proc.wait())
        if code != 0:
            tail = stderr[-2000:].decode(errors="replace")
            raise SandboxError(f"runner exited with status {code}: {tail}")
        return parse_output(stdout, result_keys(jobs)), stdout

    async def _communicate(
        self,
        proc: asyncio.subprocess.Process,
        payload: bytes,
        progress: Progress | None,
        limit: int,
    ) -> tuple[bytes, bytes]:
        """Send the payload, read stdout and stderr until both end."""
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

        async def feed() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                stdin.write(payload)
                await stdin.drain()
                stdin.close()

        async def drain_err() -> bytes:
            err = bytearray()
            while chunk := await stderr.read(65536):
                if len(err) < MAX_STDERR_BYTES:
                    err += chunk
            return bytes(err)

        feeding = asyncio.create_task(feed())
        errors = asyncio.create_task(drain_err())
        try:
            out = bytearray()
            lines = 0
            while chunk := await stdout.read(1 << 16):
                out += chunk
                if len(out) > limit:
                    raise SandboxError("runner output too large")
                if progress is not None:
                    lines += chunk.count(b"\n")
                    progress(lines)
            await feeding
            return bytes(out), await errors
        finally:
            for task in (feeding, errors):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def remove_stale_containers(self) -> int:
        """Kill and remove sandbox cgroups left behind by an executor that died (their
        owner pid is gone); those of live processes are kept. How many were removed.
        Nothing to do in ``rlimit`` mode: a sandbox dies with its executor there."""
        if self.mode != "cgroup" or os.geteuid() != 0:
            return 0
        removed = 0
        for plan in stale_plans(cgroup_version()):
            if await Cgroup(plan).remove():
                removed += 1
        return removed
