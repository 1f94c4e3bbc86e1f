"""The bwrap sandbox backend's command line, cgroup plan and choice by setting (pure:
nothing is started; tests/integration/test_sandbox.py runs it for real)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiodocker
import pytest

from sandbox.client import BwrapSandbox, DockerSandbox, make_sandbox
from sandbox.client.bwrap import (
    JOIN_CGROUP,
    MOUNT_SCRATCH,
    Mounts,
    bwrap_args,
    command,
    parse_user,
    read_env,
    tmpfs_options,
)
from sandbox.client.cgroups import (
    Limits,
    Write,
    cgroup_name,
    cgroup_version,
    limits_of,
    owner_of,
    plan_cgroup,
    stale_plans,
)
from sandbox.client.container import ENTRYPOINT
from shared.settings import ExecutorSettings, SandboxSettings

SETTINGS = SandboxSettings(memory_mb=1536, pids_limit=128, cpus=2.0, tmpfs_mb=64)
ENV = [("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("OMP_NUM_THREADS", "1")]
PLAN = plan_cgroup(1, "42-abc", limits_of(SETTINGS), root="/cg")


def _after(args: list[str], flag: str, n: int = 1) -> list[str]:
    i = args.index(flag)
    return args[i + 1 : i + 1 + n]


def test_limits_are_the_docker_backends() -> None:
    """Memory (swap included), pids and CPU as DockerSandbox.container_config sets them."""
    limits = limits_of(SETTINGS)
    assert limits == Limits(1536 << 20, 128, 200_000, 100_000)
    docker = DockerSandbox.__new__(DockerSandbox)
    docker._settings, docker._labels = SETTINGS, {}
    host = docker.container_config()["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == limits.memory_bytes
    assert host["PidsLimit"] == limits.pids
    assert host["NanoCpus"] * limits.cpu_period_us // 10**9 == limits.cpu_quota_us
    assert limits_of(SETTINGS.model_copy(update={"cpus": 0.5})).cpu_quota_us == 50_000


def test_cgroup_v1_plan() -> None:
    assert PLAN.version == 1
    assert PLAN.dirs == (
        "/cg/memory/coderm/42-abc",
        "/cg/pids/coderm/42-abc",
        "/cg/cpu/coderm/42-abc",
    )
    assert PLAN.parents == ("/cg/memory/coderm", "/cg/pids/coderm", "/cg/cpu/coderm")
    assert PLAN.writes == (
        Write("/cg/memory/coderm/42-abc/memory.limit_in_bytes", str(1536 << 20)),
        Write("/cg/memory/coderm/42-abc/memory.memsw.limit_in_bytes", str(1536 << 20), True),
        Write("/cg/pids/coderm/42-abc/pids.max", "128"),
        Write("/cg/cpu/coderm/42-abc/cpu.cfs_period_us", "100000"),
        Write("/cg/cpu/coderm/42-abc/cpu.cfs_quota_us", "200000"),
    )
    assert PLAN.procs == tuple(f"{d}/cgroup.procs" for d in PLAN.dirs)
    assert (PLAN.pids_dir, PLAN.pids_mount) == ("/cg/pids/coderm/42-abc", "/sys/fs/cgroup/pids")
    assert PLAN.enable == ()


def test_cgroup_v2_plan() -> None:
    plan = plan_cgroup(2, "42-abc", limits_of(SETTINGS), root="/cg")
    assert plan.dirs == ("/cg/coderm/42-abc",)
    assert plan.writes == (
        Write("/cg/coderm/42-abc/memory.max", str(1536 << 20)),
        Write("/cg/coderm/42-abc/memory.swap.max", "0", True),
        Write("/cg/coderm/42-abc/pids.max", "128"),
        Write("/cg/coderm/42-abc/cpu.max", "200000 100000"),
    )
    assert plan.procs == ("/cg/coderm/42-abc/cgroup.procs",)
    assert plan.enable == (
        Write("/cg/cgroup.subtree_control", "+memory +pids +cpu"),
        Write("/cg/coderm/cgroup.subtree_control", "+memory +pids +cpu"),
    )
    # the runner reads pids.events at the root of a v2 hierarchy
    assert (plan.pids_dir, plan.pids_mount) == ("/cg/coderm/42-abc", "/sys/fs/cgroup")
    with pytest.raises(ValueError):
        plan_cgroup(3, "x", limits_of(SETTINGS))


def test_cgroup_version_and_names(tmp_path: Path) -> None:
    assert cgroup_version(str(tmp_path)) == 1
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert cgroup_version(str(tmp_path)) == 2
    name = cgroup_name(1234)
    assert owner_of(name) == 1234 and name != cgroup_name(1234)
    assert owner_of("docker") is None and owner_of("12") is None


def test_stale_plans_name_only_dead_owners(tmp_path: Path) -> None:
    for ctrl in ("memory", "pids", "cpu"):
        for name in (f"{2**22 + 1}-dead", f"{os.getpid()}-live", "other"):
            (tmp_path / ctrl / "coderm" / name).mkdir(parents=True)
    plans = stale_plans(1, str(tmp_path))
    assert [p.dirs for p in plans] == [
        tuple(str(tmp_path / c / "coderm" / f"{2**22 + 1}-dead") for c in ("memory", "pids", "cpu"))
    ]


def test_bwrap_args_isolate_as_the_container_does() -> None:
    args = bwrap_args(SETTINGS, "/roots/x/rootfs", ENV, PLAN)
    for flag in (
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--clearenv",
    ):
        assert flag in args
    assert "--share-net" not in args  # a network namespace of its own: loopback only
    assert _after(args, "--uid") == ["65534"] and _after(args, "--gid") == ["65534"]
    assert _after(args, "--ro-bind", 2) == ["/roots/x/rootfs", "/"]
    assert args.index("--ro-bind") < args.index("--proc") < args.index("--dev")
    assert _after(args, "--proc") == ["/proc"] and _after(args, "--dev") == ["/dev"]
    binds = [args[i + 1 : i + 3] for i, a in enumerate(args) if a == "--bind"]
    assert binds == [[Mounts().tmp, "/tmp"], [Mounts().shm, "/dev/shm"]]
    assert args.index("--dev") < args.index("--bind")  # /dev/shm lies in the fresh /dev
    ro_binds = [args[i + 1 : i + 3] for i, a in enumerate(args) if a == "--ro-bind"]
    assert ["/cg/pids/coderm/42-abc", "/sys/fs/cgroup/pids"] in ro_binds
    assert _after(args, "--cap-drop") == ["ALL"]
    assert _after(args, "--chdir") == ["/tmp"]
    setenv = [tuple(args[i + 1 : i + 3]) for i, a in enumerate(args) if a == "--setenv"]
    assert setenv == ENV
    assert args.index("--clearenv") < args.index("--setenv")
    assert args[-len(ENTRYPOINT) - 1 :] == ["--", *ENTRYPOINT]


def test_command_joins_the_cgroup_first_and_drops_to_the_sandbox_user() -> None:
    argv = command(SETTINGS, "/r", ENV, PLAN)
    assert argv[:6] == ["/bin/sh", "-c", JOIN_CGROUP, "sh", "3", *PLAN.procs[:1]]
    assert argv[5:8] == list(PLAN.procs)
    rest = argv[8:]
    assert rest[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert rest[5:9] == ["/bin/sh", "-c", MOUNT_SCRATCH, "sh"]
    assert rest[9:13] == [
        "size=64m,mode=1777,nosuid,nodev,noexec",
        Mounts().tmp,
        "size=64m,mode=1777,nosuid,nodev,noexec",
        Mounts().shm,
    ]
    setpriv = rest[13 : rest.index("bwrap")]
    assert setpriv[0] == "setpriv"
    for flag in ("--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"):
        assert flag in setpriv
    assert rest[rest.index("bwrap") + 1 :] == bwrap_args(SETTINGS, "/r", ENV, PLAN)


def test_scripts_join_every_cgroup_then_exec(tmp_path: Path) -> None:
    """The wrapper scripts, run by a real shell on plain files: each file gets the
    shell's "0" (the writer itself), then the command runs."""
    files = [tmp_path / "a", tmp_path / "b"]
    out = subprocess.run(
        ["/bin/sh", "-c", JOIN_CGROUP, "sh", "2", *map(str, files), "echo", "ran"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "ran\n"
    assert [f.read_text() for f in files] == ["0\n", "0\n"]
    failed = subprocess.run(
        ["/bin/sh", "-c", JOIN_CGROUP, "sh", "1", str(tmp_path / "no" / "such"), "echo", "ran"],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 125 and failed.stdout == ""


def test_user_tmpfs_and_env(tmp_path: Path) -> None:
    assert parse_user("65534:65534") == (65534, 65534)
    assert parse_user("1000") == (1000, 1000)
    with pytest.raises(ValueError):
        parse_user("nobody")
    assert tmpfs_options(32) == "size=32m,mode=1777,nosuid,nodev,noexec"
    (tmp_path / "env").write_text("PATH=/usr/bin:/bin\nLANG=C.UTF-8\n\nA=b=c\n")
    assert read_env(str(tmp_path)) == [("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("A", "b=c")]


async def test_the_setting_picks_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ExecutorSettings().sandbox.backend == "docker"  # Docker stays the default
    monkeypatch.setenv("CODERM_SANDBOX__BACKEND", "bwrap")
    monkeypatch.setenv("CODERM_SANDBOX__ROOTFS_DIR", "/srv/root")
    settings = ExecutorSettings().sandbox
    assert (settings.backend, settings.rootfs_dir) == ("bwrap", "/srv/root")
    bwrap = make_sandbox(settings, parallel=3)
    assert isinstance(bwrap, BwrapSandbox) and bwrap.parallel == 3
    docker = aiodocker.Docker(url="unix:///nonexistent.sock")
    try:
        chosen = make_sandbox(settings.model_copy(update={"backend": "docker"}), docker)
        assert isinstance(chosen, DockerSandbox)
    finally:
        await docker.close()
    with pytest.raises(ValueError):
        make_sandbox(settings.model_copy(update={"backend": "docker"}))
    monkeypatch.setenv("CODERM_SANDBOX__BACKEND", "podman")
    with pytest.raises(ValueError):
        ExecutorSettings()


def test_bwrap_timeout_is_the_containers() -> None:
    """The host kills a bwrap run at the same deadline as a container."""
    docker = DockerSandbox.__new__(DockerSandbox)
    docker._settings = SETTINGS
    assert BwrapSandbox(SETTINGS).timeout_s([]) == docker.timeout_s([])
