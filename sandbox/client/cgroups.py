"""A cgroup a sandbox run for the bwrap backend (:mod:`sandbox.client.bwrap`): its
paths and limit values (pure: :func:`plan_cgroup`), and creating, killing and
removing it (:class:`Cgroup`).

The limits are the Docker backend's, from the same :class:`SandboxSettings`: memory
(``memory_mb``, swap included: Docker's ``Memory`` = ``MemorySwap``), processes
(``pids_limit``) and a CFS CPU quota of ``cpus`` CPUs over Docker's 100 ms period
(``NanoCpus``). cgroup v1 gets one directory per controller,
``/sys/fs/cgroup/{memory,pids,cpu}/coderm/<name>``; cgroup v2 (a host whose
``/sys/fs/cgroup`` is the unified hierarchy) one, ``/sys/fs/cgroup/coderm/<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from shared.settings import SandboxSettings

CGROUP_ROOT = "/sys/fs/cgroup"
PARENT = "coderm"
"""Every sandbox's cgroup is a child of this one (per controller on v1)."""
V1_CONTROLLERS = ("memory", "pids", "cpu")
V2_CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
"""Docker's CFS period for ``NanoCpus`` (100 ms)."""


@dataclass(frozen=True)
class Limits:
    """What a sandbox's cgroup allows, in the kernel's units."""

    memory_bytes: int
    pids: int
    cpu_quota_us: int
    cpu_period_us: int = CFS_PERIOD_US


def limits_of(settings: SandboxSettings) -> Limits:
    """The Docker backend's limits (``container_config``) as cgroup values."""
    return Limits(
        memory_bytes=settings.memory_mb << 20,
        pids=settings.pids_limit,
        cpu_quota_us=max(1000, round(settings.cpus * CFS_PERIOD_US)),
    )


@dataclass(frozen=True)
class Write:
    """One value written to one cgroup file; ``optional``: a kernel without the file
    (v1 without swap accounting: no ``memory.memsw.*``) is not an error."""

    path: str
    value: str
    optional: bool = False


@dataclass(frozen=True)
class CgroupPlan:
    """A sandbox's cgroup: its directories (one per v1 controller, one on v2), the
    writes that set its limits (in order, after the directories exist), the
    ``cgroup.procs`` files the sandbox's first process writes itself into, and the
    directory whose ``pids.events`` the runner reads (bound where it looks for it)."""

    version: int
    dirs: tuple[str, ...]
    writes: tuple[Write, ...]
    procs: tuple[str, ...]
    pids_dir: str
    parents: tuple[str, ...]
    enable: tuple[Write, ...] = ()
    """v2: the controllers switched on for the children of the root and of ``coderm``."""

    @property
    def pids_mount(self) -> str:
        """Where the runner looks for its pids cgroup (``coderm_runner.containment``)."""
        return f"{CGROUP_ROOT}/pids" if self.version == 1 else CGROUP_ROOT


def cgroup_version(root: str = CGROUP_ROOT) -> int:
    """2 when ``root`` is the unified hierarchy (it has ``cgroup.controllers``), else 1
    (a hybrid host's ``unified`` mount holds no controllers and is not used)."""
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def cgroup_tree_writable(version: int, root: str = CGROUP_ROOT) -> bool:
    """Whether this process may make the sandboxes' cgroups: root, and the directories
    they go in (``coderm`` under each v1 controller, or under the v2 root; else where
    it would be made) writable. False in a typical pod, whose ``/sys/fs/cgroup`` is
    read-only or not its own, and for any user but root."""
    if os.geteuid() != 0:
        return False
    homes = [f"{root}/{c}" for c in V1_CONTROLLERS] if version == 1 else [root]
    for home in homes:
        parent = f"{home}/{PARENT}"
        target = parent if os.path.isdir(parent) else home
        if not os.path.isdir(target) or not os.access(target, os.W_OK):
            return False
    return True


def plan_cgroup(version: int, name: str, limits: Limits, root: str = CGROUP_ROOT) -> CgroupPlan:
    """The cgroup ``name`` with ``limits`` (pure: nothing is read or written)."""
    if version == 1:
        parents = tuple(f"{root}/{c}/{PARENT}" for c in V1_CONTROLLERS)
        memory, pids, cpu = (f"{parent}/{name}" for parent in parents)
        writes = (
            Write(f"{memory}/memory.limit_in_bytes", str(limits.memory_bytes)),
            Write(f"{memory}/memory.memsw.limit_in_bytes", str(limits.memory_bytes), True),
            Write(f"{pids}/pids.max", str(limits.pids)),
            Write(f"{cpu}/cpu.cfs_period_us", str(limits.cpu_period_us)),
            Write(f"{cpu}/cpu.cfs_quota_us", str(limits.cpu_quota_us)),
        )
        dirs = (memory, pids, cpu)
        return CgroupPlan(1, dirs, writes, tuple(f"{d}/cgroup.procs" for d in dirs), pids, parents)
    if version != 2:
        raise ValueError(f"unknown cgroup version {version}")
    parent = f"{root}/{PARENT}"
    path = f"{parent}/{name}"
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS)
    return CgroupPlan(
        2,
        (path,),
        (
            Write(f"{path}/memory.max", str(limits.memory_bytes)),
            Write(f"{path}/memory.swap.max", "0", True),
            Write(f"{path}/pids.max", str(limits.pids)),
            Write(f"{path}/cpu.max", f"{limits.cpu_quota_us} {limits.cpu_period_us}"),
        ),
        (f"{path}/cgroup.procs",),
        path,
        (parent,),
        (
            Write(f"{root}/cgroup.subtree_control", wanted),
            Write(f"{parent}/cgroup.subtree_control", wanted),
        ),
    )


def cgroup_name(owner: int | None = None) -> str:
    """A fresh cgroup name: ``<owner pid>-<random>``, so that leftovers of a process
    that died can be told from the cgroups of live executors."""
    return f"{owner if owner is not None else os.getpid()}-{os.urandom(6).hex()}"


def owner_of(name: str) -> int | None:
    """The pid in a :func:`cgroup_name`, or None for a name that is not one."""
    head, _, rest = name.partition("-")
    return int(head) if head.isdigit() and rest else None


def _write(write: Write) -> None:
    try:
        Path(write.path).write_text(write.value)
    except FileNotFoundError:
        if not write.optional:
            raise


def _kill_all(kill_file: str) -> None:
    """v2: kill every process of the cgroup at once (kernels from 5.14)."""
    with contextlib.suppress(OSError), open(kill_file, "w") as f:
        f.write("1")


def _procs(dirs: tuple[str, ...]) -> set[int]:
    found: set[int] = set()
    for d in dirs:
        with contextlib.suppress(OSError):
            found.update(int(p) for p in Path(d, "cgroup.procs").read_text().split())
    return found


class Cgroup:
    """The cgroup of :class:`CgroupPlan` on this host: :meth:`create` it, :meth:`kill`
    every process in it, :meth:`remove` it."""

    def __init__(self, plan: CgroupPlan) -> None:
        self.plan = plan

    def create(self) -> None:
        """Make the directories and set the limits (OSError when the host refuses:
        no cgroup controller, not root, ...); a half-made cgroup is removed."""
        for write in self.plan.enable:
            with contextlib.suppress(OSError):  # already on, or the host refuses: seen below
                _write(write)
        for parent in self.plan.parents:
            os.makedirs(parent, exist_ok=True)
        made: list[str] = []
        try:
            for d in self.plan.dirs:
                os.mkdir(d)
                made.append(d)
            for write in self.plan.writes:
                _write(write)
        except OSError:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
            raise

    def processes(self) -> set[int]:
        """The host pids in the cgroup now."""
        return _procs(self.plan.dirs)

    async def kill(self, timeout_s: float = 10.0) -> bool:
        """SIGKILL every process in the cgroup until none is left (a fork bomb's
        children included: the pids limit bounds them); True when it is empty."""
        kill_file = os.path.join(self.plan.dirs[0], "cgroup.kill")
        deadline = time.monotonic() + timeout_s
        while True:
            if self.plan.version == 2:
                _kill_all(kill_file)
            pids = self.processes()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)

    async def remove(self, timeout_s: float = 10.0) -> bool:
        """Kill what is left and remove the directories; True when they are gone."""
        await self.kill(timeout_s)
        deadline = time.monotonic() + timeout_s
        left = list(self.plan.dirs)
        while left:
            for d in list(left):
                try:
                    os.rmdir(d)
                    left.remove(d)
                except FileNotFoundError:
                    left.remove(d)
                except OSError:  # busy: a process is still on its way out
                    pass
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        return not left


def stale_plans(version: int, root: str = CGROUP_ROOT) -> list[CgroupPlan]:
    """The sandbox cgroups on this host whose owner process is gone (a crashed
    executor's), as plans to remove them by."""
    parents = (
        [f"{root}/{c}/{PARENT}" for c in V1_CONTROLLERS] if version == 1 else [f"{root}/{PARENT}"]
    )
    names: set[str] = set()
    for parent in parents:
        with contextlib.suppress(OSError):
            names.update(e.name for e in os.scandir(parent) if e.is_dir(follow_symlinks=False))
    plans: list[CgroupPlan] = []
    for name in sorted(names):
        owner = owner_of(name)
        if owner is None or _alive(owner):
            continue
        plan = plan_cgroup(version, name, Limits(0, 0, 0), root)
        plans.append(
            CgroupPlan(
                version,
                tuple(d for d in plan.dirs if os.path.isdir(d)),
                (),
                (),
                plan.pids_dir,
                plan.parents,
            )
        )
    return plans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
