"""The sandbox backend a process uses, chosen by ``CODERM_SANDBOX__BACKEND``.

``docker`` (default): :class:`~sandbox.client.container.DockerSandbox`, a container a
batch. ``bwrap``: :class:`~sandbox.client.bwrap.BwrapSandbox`, the same runner under
bubblewrap in a cgroup of its own, for hosts and pods without a Docker daemon.

Why the execution profile (``shared.core.profiles``, the cache key of verdicts) does
not name the backend: a verdict is a function of the runner, the interpreter and
packages it runs with, the limits and what the code can reach, and by design the two
backends share all of them:

* the same bytes: the bwrap root is the sandbox image's own file system (exported
  from it by deploy/local/up.sh, keyed by its id), so the same ``runner.py``, the same
  Python 3.11, numpy and pandas, and the image's environment (``env``) only;
* the same limits from the same :class:`SandboxSettings`: memory with swap, pids, a
  CPU quota of ``cpus`` over Docker's 100 ms period; time limits are enforced by the
  runner itself in effective time (CFS throttling excluded), and rlimits per pair;
* the same view: the runner is PID 1 of its pid namespace (kills escaped processes,
  reaps), uid/gid 65534 with no capabilities, read-only root, ``/tmp`` and
  ``/dev/shm`` tmpfs of Docker's sizes with ``noexec,nosuid,nodev``, the run's pids
  cgroup's ``pids.events`` where the runner reads it, a network namespace with only
  loopback (Docker's ``none``), Docker's ``/etc/hosts``;
* what is left differs only where no deterministic test can depend on it: the
  hostname (a fresh container id under Docker), ``/sys`` (only the pids cgroup under
  bwrap), ``/dev/mqueue``.

The integration suite (tests/integration/test_sandbox.py) runs every hostile-code
case against both backends and checks that a batch of real pairs gets the same
verdicts from both. A backend change that could change a verdict must bump
``SANDBOX_VERSION`` (or name the backend in the profile) instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import aiodocker

from sandbox.client.bwrap import BwrapSandbox
from sandbox.client.container import DockerSandbox, Progress
from sandbox.client.jobs import Job
from sandbox.client.results import BatchResult
from shared.settings import SandboxSettings


class Sandbox(Protocol):
    """What the executor and ``exec-pairs`` use of a sandbox backend."""

    parallel: int

    async def run_batch(
        self,
        jobs: Sequence[Job],
        progress: Progress | None = None,
        site_packages: bool = True,
    ) -> BatchResult:
        """One sandbox run of ``jobs``; SandboxError when it broke."""
        ...

    async def remove_stale_containers(self) -> int:
        """Remove what crashed owners left behind; how many."""
        ...


def make_sandbox(
    settings: SandboxSettings,
    docker: aiodocker.Docker | None = None,
    parallel: int | None = None,
    labels: dict[str, str] | None = None,
) -> Sandbox:
    """The backend of ``settings.backend`` (``docker`` needs a client: ``docker``)."""
    if settings.backend == "bwrap":
        return BwrapSandbox(settings, parallel)
    if docker is None:
        raise ValueError("the docker sandbox backend needs a Docker client")
    return DockerSandbox(docker, settings, parallel, labels)


@contextlib.asynccontextmanager
async def open_backend(
    settings: SandboxSettings,
    parallel: int | None = None,
    labels: dict[str, str] | None = None,
) -> AsyncIterator[Sandbox]:
    """The backend of ``settings.backend``, with its own Docker connection when it is
    ``docker`` (closed on exit)."""
    if settings.backend == "bwrap":
        yield BwrapSandbox(settings, parallel)
        return
    docker = aiodocker.Docker(url=settings.docker_url)
    try:
        yield DockerSandbox(docker, settings, parallel, labels)
    finally:
        await docker.close()
