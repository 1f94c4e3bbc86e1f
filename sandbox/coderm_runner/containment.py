"""Confining the runner's children and watching them: rlimits, sessions and
``/proc`` (effective time, process states), forking helpers, message framing and
the scratch directories a job may leave dirty.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn

from .common import MAX_MESSAGE_BYTES, JsonDict, Limits


def _load_prctl() -> Callable[[int, int], int] | None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.prctl
    except Exception:
        return None

    def prctl(option: int, arg: int) -> int:
        return int(fn(option, arg, 0, 0, 0))

    return prctl


PRCTL = _load_prctl()
PR_SET_DUMPABLE = 4
IS_INIT = os.getpid() == 1


def run_delay(
    pid: int | str = "self",
    opener: Callable[[str, int], int] = os.open,
    reader: Callable[[int, int], bytes] = os.read,
    closer: Callable[[int], None] = os.close,
) -> float:
    """Seconds ``pid`` has spent runnable but waiting for a CPU (0 if unknown)."""
    try:
        fd = opener(f"/proc/{pid}/schedstat", os.O_RDONLY)
    except OSError:
        return 0.0
    try:
        return int(reader(fd, 128).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0
    finally:
        closer(fd)


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        fields = raw[raw.rindex(b")") + 2 :].split()
        return fields[0].decode(), int(fields[1]), int(fields[2])
    except (OSError, ValueError, IndexError):
        return None


#: The container's pids cgroup events file (cgroup v1 mount, then v2).
PIDS_EVENTS = ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")


class PidsLimitHits:
    """How many forks this container's pids limit has refused so far (its cgroup's
    ``pids.events``). While one pair's fork bomb holds the limit, its siblings' forks
    fail too; the scheduler reads this counter to know which pairs ran then. Always 0
    where the file cannot be read (e.g. outside a container)."""

    def __init__(self, paths: tuple[str, ...] = PIDS_EVENTS) -> None:
        self.fd = -1
        for path in paths:
            with contextlib.suppress(OSError):
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                break

    def count(self) -> int:
        """The counter now."""
        if self.fd < 0:
            return 0
        try:
            return int(os.pread(self.fd, 64, 0).split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    def close(self) -> None:
        """Release the file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Clock:
    """Effective time of the calling process: wall clock minus run-queue waits."""

    def __init__(self) -> None:
        self.now, self.delay_of = time.perf_counter, run_delay
        self.wall, self.delay = 0.0, 0.0

    def start(self) -> None:
        self.wall, self.delay = self.now(), self.delay_of()

    def seconds(self) -> float:
        return (self.now() - self.wall) - (self.delay_of() - self.delay)


def confine(limits: Limits, cpu_s: int | None = None) -> None:
    """Confine this freshly forked process: own session, stdio on /dev/null, first in
    line for the OOM killer, not dumpable, the batch's rlimits (and ``RLIMIT_CPU``), and
    the image's site-packages off ``sys.path`` when the batch runs with the standard
    library only."""
    os.setsid()
    if not limits.site_packages:
        sys.path[:] = [
            p for p in sys.path if os.path.basename(p) not in ("site-packages", "dist-packages")
        ]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    if PRCTL is not None:
        # the runner is not dumpable, so its children start owning no /proc files:
        # become dumpable just long enough to raise our own oom_score_adj, then stop
        # being dumpable so that siblings cannot open our /proc/<pid>/fd or mem.
        PRCTL(PR_SET_DUMPABLE, 1)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    if PRCTL is not None:
        PRCTL(PR_SET_DUMPABLE, 0)
    mib = 1 << 20
    for res, value in (
        (resource.RLIMIT_AS, limits.address_space_mb * mib),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CPU, cpu_s),
    ):
        if value is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


def enter_child(keep_fd: int, limits: Limits, cpu_s: int | None) -> None:
    """Confine a freshly forked child; ``keep_fd`` (its pipe end) becomes fd 3."""
    confine(limits, cpu_s)
    os.dup2(keep_fd, 3)  # dup2 clears FD_CLOEXEC on the copy
    os.closerange(4, 1 << 20)


def child_main(body: Callable[[], None]) -> NoReturn:
    """Run ``body`` in a forked child and never return into the runner's loop."""
    code = 70
    try:
        body()
        code = 0
    except BaseException:
        code = 71
    finally:
        os._exit(code)


def send_message(fd: int, msg: JsonDict) -> None:
    data = json.dumps(msg, ensure_ascii=True).encode() + b"\n"
    while data:
        n = os.write(fd, data)
        data = data[n:]


def kill_group(pid: int) -> None:
    for fn, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            fn(target, signal.SIGKILL)


def reap_child(pid: int) -> int | None:
    """Kill ``pid``'s group and wait for ``pid``; return its wait status."""
    kill_group(pid)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    kill_group(pid)  # grandchildren left in the group
    return status


class MessageReader:
    """Newline-delimited JSON messages from a child's pipe, with deadlines."""

    TIMEOUT = "timeout"
    EOF = "eof"

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self, deadline: float) -> JsonDict | str:
        """Next message, ``TIMEOUT`` if the deadline passed first, ``EOF`` else."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                try:
                    msg = json.loads(line)
                except ValueError:
                    return self.EOF
                return msg if isinstance(msg, dict) else self.EOF
            if len(self.buf) > MAX_MESSAGE_BYTES:
                return self.EOF
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.TIMEOUT
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return self.TIMEOUT
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return self.EOF
            self.buf += chunk


def fork_child(body: Callable[[int], None], attempts: int = 50) -> tuple[int, int]:
    """Fork a child running ``body(write_fd)``; return (pid, read_fd).

    While the pids limit is exhausted, kills leftovers (as PID 1) and retries;
    BlockingIOError after ``attempts``.
    """
    r, w = os.pipe()
    for attempt in range(attempts):
        try:
            pid = os.fork()
            break
        except BlockingIOError:
            if attempt + 1 == attempts:
                os.close(r)
                os.close(w)
                raise
            cleanup_after_job()
            time.sleep(0.02 * (attempt + 1))
    if pid == 0:
        child_main(lambda: body(w))
    os.close(w)
    return pid, r


def empty_scratch() -> None:
    for scratch in ("/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(scratch))
        except OSError:
            continue
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


def scratch_is_dirty() -> bool:
    for scratch in ("/tmp", "/dev/shm"):
        with contextlib.suppress(OSError):
            if os.listdir(scratch):
                return True
    return False


def cleanup_after_job() -> None:
    """As PID 1 of the sandbox: kill every other process, reap, empty scratch dirs."""
    if not IS_INIT:
        return
    deadline = time.monotonic() + 2.0
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            break  # no children left at all
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    empty_scratch()
