"""The bwrap backend's limits without a cgroup (``rlimit`` mode, :mod:`sandbox.client.bwrap`):
rlimits set inside the sandbox before the runner starts, with the pod's (or host's)
own cgroup as the outer bound.

Where the executor cannot make a cgroup a run (not root, or a cgroup tree it cannot
write: a Kubernetes pod without privileges), each limit of :class:`SandboxSettings`
becomes an rlimit of the sandbox's first process, inherited by everything it starts:

* processes: ``RLIMIT_NPROC`` = ``pids_limit``. It is set *inside* the sandbox's own
  user namespace (after bwrap made it), where the kernel counts the processes of the
  sandbox's user in that namespace only (Linux 5.14 and later: per user namespace
  counts), so concurrent sandboxes of one executor do not share the limit;
* memory: ``RLIMIT_AS`` of every process (``memory_mb``, never below the runner's own
  per-pair 2 GiB, so that a pair sees the same limit as in a container); the total is
  bounded by the pod's memory limit, where the OOM killer picks a pair first (its
  ``oom_score_adj`` is 1000);
* CPU: ``RLIMIT_CPU`` of every process at the batch's time-out (a backstop: the host
  kills the run at that deadline anyway); the CPU *rate* is the pod's CPU limit. Time
  limits are effective time (run-queue waits excluded), so neither changes a verdict;
* files: ``RLIMIT_FSIZE`` at the size of ``/tmp`` (no file can be larger there).

Pure: :func:`rlimits_of` computes the values, :func:`shim_command` the command line
that sets them and execs the runner (``python3 -I -S -c``: the image's own Python,
nothing else needed in it), PID 1 of the sandbox as the runner would be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.client.framing import ADDRESS_SPACE_MB
from shared.settings import SandboxSettings

MIB = 1 << 20

# argv: name=value pairs (RLIMIT_<name>, soft = hard), then "--", then the command
SHIM = (
    "import os, resource, sys\n"
    "args = sys.argv[1:]\n"
    "cut = args.index('--')\n"
    "for spec in args[:cut]:\n"
    "    name, _, value = spec.partition('=')\n"
    "    resource.setrlimit(getattr(resource, 'RLIMIT_' + name), (int(value), int(value)))\n"
    "os.execvp(args[cut + 1], args[cut + 1:])\n"
)


@dataclass(frozen=True)
class Rlimits:
    """The rlimits of a sandbox without a cgroup (soft = hard), in the kernel's units."""

    address_space_bytes: int
    nproc: int
    cpu_s: int
    file_size_bytes: int

    def specs(self) -> list[str]:
        """``NAME=value`` for the shim, ``NAME`` as in ``resource.RLIMIT_<NAME>``."""
        return [
            f"AS={self.address_space_bytes}",
            f"NPROC={self.nproc}",
            f"CPU={self.cpu_s}",
            f"FSIZE={self.file_size_bytes}",
        ]


def rlimits_of(settings: SandboxSettings, timeout_s: float) -> Rlimits:
    """The limits of ``settings`` as rlimits, for a run killed after ``timeout_s``."""
    return Rlimits(
        address_space_bytes=max(settings.memory_mb, ADDRESS_SPACE_MB) * MIB,
        nproc=settings.pids_limit,
        cpu_s=max(1, math.ceil(timeout_s)),
        file_size_bytes=settings.tmpfs_mb * MIB,
    )


def shim_command(limits: Rlimits, command: Sequence[str]) -> list[str]:
    """``command`` run with ``limits``: the image's Python sets them, then execs it
    (same pid, so the runner stays PID 1)."""
    return ["python3", "-I", "-S", "-c", SHIM, *limits.specs(), "--", *command]
