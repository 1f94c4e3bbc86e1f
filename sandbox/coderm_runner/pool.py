"""The unittest pairs' scheduler (:class:`PairPool`): up to K pairs at once, each in
a fresh process forked by the zygote, with effective-time deadlines, early verdicts
for solutions that fail alone and reruns of pairs disturbed from outside.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from collections import deque
from dataclasses import dataclass, field

from .common import (
    CRASH,
    ERROR,
    FAIL,
    PASS,
    REFERENCE_GLOBALS,
    SANDBOX_ERROR,
    TIMEOUT,
    JsonDict,
    Limits,
    describe_status,
)
from .containment import (
    IS_INIT,
    PidsLimitHits,
    empty_scratch,
    kill_group,
    proc_stat,
    run_delay,
    scratch_is_dirty,
)
from .output import Output
from .zygote import ZygoteLink


@dataclass(frozen=True)
class Adaptive:
    """Per-test limit: ``clamp(factor x slowest finished run of the test by other
    solutions, floor_s, time_limit_s)`` once ``min_samples`` such runs finished."""

    factor: float
    floor_s: float
    min_samples: int

    @classmethod
    def from_json(cls, raw: object) -> Adaptive | None:
        if not isinstance(raw, dict):
            return None
        return cls(float(raw["factor"]), float(raw["floor_s"]), int(raw["min_samples"]))


@dataclass
class Pair:
    """One unittest job, with its code as text indices."""

    index: int
    key: str
    solution: int | None  # text of the solution part (split jobs)
    test: int | None  # text of the test part (split jobs)
    code: int | None  # text of the whole module (unsplit jobs)
    limit: float
    kill_after: float
    adaptive: Adaptive | None
    reference: bool = False  # CodeRM's executor's globals instead of the strict ones
    solo: bool = False


UNKNOWN, PROBING, KNOWN_OK = 0, 1, 2


@dataclass
class Group:
    """The pending pairs of one solution; its first pair probes the solution alone."""

    pending: deque[Pair] = field(default_factory=deque)
    state: int = UNKNOWN


@dataclass
class Running:
    """A pair's process, as the scheduler sees it (``pid`` 0 until the zygote forked it)."""

    pair: Pair
    pid: int
    nonce: str
    t0: float
    limit: float
    deadline: float  # effective seconds after the start
    wall_cap: float
    probe: bool
    delay: float = 0.0
    sol_done: bool = False
    final: JsonDict | None = None
    taints: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    timed_out: bool = False
    stopped: bool = False
    elapsed: float = 0.0
    effective: float | None = None
    pids_hits: int = 0  # the container's refused forks when the pair was started


Outcome = tuple[str, float | None, str | None, int | None, int | None]


class PairPool:
    """Runs unittest pairs, up to ``parallel`` at once, each in a fresh process forked
    from the warmed :class:`Zygote`.

    Scheduling: pairs run in job order, solution by solution. The first pair of a
    solution is its *probe*: it tells the runner when the solution part finished. If
    the solution part itself raised, exited or overran the limit, every other pair of
    that solution gets the same verdict without running (the solution runs first in
    every pair's module, so each of them would fail the same way). A pair whose
    process died of a signal the runner did not send, or was stopped (e.g. by a
    sibling), or that ran while the container's pids limit refused a fork (a
    sibling's fork bomb makes every pair's forks fail), runs again at the end, alone.

    Nothing waits on the zygote: requests, its replies and exit reports, and the
    pairs' messages (one shared datagram socket, each message signed with its pair's
    nonce; anything else is dropped) are handled as they come, in one loop with the
    deadlines.
    """

    def __init__(
        self, pairs: list[Pair], limits: Limits, out: Output, parallel: int, link: ZygoteLink
    ) -> None:
        self.pairs = pairs
        self.limits = limits
        self.out = out
        self.parallel = max(1, parallel)
        self.link = link
        self.groups: list[Group] = []
        # a solution's pairs share its probe only within one namespace mode: the same
        # solution may fail alone in one and not in the other (``__name__``, ``output``)
        by_solution: dict[tuple[int, bool], Group] = {}
        for pair in pairs:
            if pair.solution is None:
                group = Group(state=KNOWN_OK)
                self.groups.append(group)
            else:
                solution = pair.solution, pair.reference
                group = by_solution.get(solution) or Group()
                if solution not in by_solution:
                    by_solution[solution] = group
                    self.groups.append(group)
            group.pending.append(pair)
        self.group_of = by_solution
        self.first = 0
        self.running: dict[str, Running] = {}  # by nonce
        self.starting: dict[int, Running] = {}  # by pair index, until the zygote replies
        self.by_pid: dict[int, Running] = {}
        self.retry: deque[tuple[Pair, bool]] = deque()
        self.busy = 0
        self.solo: list[Pair] = []
        self.slowest: dict[int, float] = {}
        self.finished: dict[int, int] = {}
        self.dirty = False
        self.sock = link.sock
        self.results = link.results
        self.zygote = link.pid
        self.ended: deque[int] = deque(maxlen=64)  # pids of pairs that ended lately
        self.pids_hits = PidsLimitHits()

    # ---------------------------------------------------------------- scheduling

    def run(self) -> None:
        """Run every pair and report each result (the link's texts are loaded)."""
        try:
            self._run()
        finally:
            self.pids_hits.close()

    def _run(self) -> None:
        self._loop()
        for pair in self.solo:
            pair.solo = True
        self.groups = [Group(pending=deque(self.solo), state=KNOWN_OK)] if self.solo else []
        self.first, self.parallel, self.solo = 0, 1, []
        # each pair that runs alone starts in an emptied container: no process left by
        # an earlier pair (a fork bomb's dying processes still count against the pids
        # limit) can change its verdict
        self.dirty = self.dirty or (IS_INIT and bool(self.groups))
        self._loop()

    def _loop(self) -> None:
        while True:
            self._fill()
            if self.running:
                self._wait()
            elif self.dirty:
                self._clean()
            elif self.retry:  # nothing runs, yet no process can be forked
                self.busy += 1
                if self.busy > 50:
                    pair, _ = self.retry.popleft()
                    self._emit(pair, (SANDBOX_ERROR, None, "runner: cannot fork", None, None))
                    continue
                if IS_INIT:
                    self._sweep()
                time.sleep(0.02)
            else:
                return

    def _fill(self) -> None:
        while len(self.running) < self.parallel and not self.dirty:
            picked = self.retry.popleft() if self.retry else self._pick()
            if picked is None:
                return
            self._start(*picked)

    def _pick(self) -> tuple[Pair, bool] | None:
        """The next pair to start and whether it probes its solution, or None."""
        i = self.first
        while i < len(self.groups):
            group = self.groups[i]
            if not group.pending:
                if i == self.first:
                    self.first += 1
                i += 1
                continue
            if group.state != PROBING:
                probe = group.state == UNKNOWN
                if probe:
                    group.state = PROBING
                return group.pending.popleft(), probe
            i += 1
        return None

    def _limit(self, pair: Pair) -> float:
        adaptive = pair.adaptive
        if adaptive is None or pair.test is None:
            return pair.limit
        if self.finished.get(pair.test, 0) < adaptive.min_samples:
            return pair.limit
        scaled = adaptive.factor * self.slowest[pair.test]
        return min(pair.limit, max(adaptive.floor_s, scaled))

    def _set_state(self, pair: Pair, state: int) -> None:
        if pair.solution is None:
            return
        group = self.group_of.get((pair.solution, pair.reference))
        if group is not None:
            group.state = state

    # ---------------------------------------------------------------- the zygote

    def _zygote_lost(self) -> None:
        """The zygote is gone (a pair killed it): give up every pair in flight (each
        runs again alone) and start a new zygote."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.zygote, signal.SIGKILL)
        self.link.stop()
        for run in list(self.running.values()):
            if run.pid:
                kill_group(run.pid)
                self._interfered(run)
            else:  # never started
                self.retry.appendleft((run.pair, run.probe))
        self.running.clear()
        self.starting.clear()
        self.by_pid.clear()
        self.link.spawn()
        self.sock, self.zygote = self.link.sock, self.link.pid

    def _on_zygote(self) -> None:
        """Handle every message the zygote has sent."""
        assert self.sock is not None
        zygote = self.zygote
        while zygote == self.zygote:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            try:
                kind, first, rest = [*data.split(b" ", 2), b""][:3]
                number = int(first)
            except ValueError:
                self._zygote_lost()
                return
            if kind == b"X":
                self._exited(number, int(rest))
            else:
                self._reply(kind, number, rest)

    def _reply(self, kind: bytes, index: int, rest: bytes) -> None:
        run = self.starting.pop(index, None)
        if run is None:
            return
        if kind == b"S":
            pid, split = rest.split()
            run.pid, run.t0 = int(pid), time.monotonic()
            self.by_pid[run.pid] = run
            self.busy = 0
            if run.probe and split != b"1":
                # no separate solution part to time: this pair cannot probe its solution
                self._set_state(run.pair, UNKNOWN)
                run.probe = False
            if run.ended:
                self._end(run)
            return
        del self.running[run.nonce]
        if kind == b"E":  # the module does not compile: nothing ran
            detail = rest.decode("utf-8", "replace")
            self._emit(run.pair, (ERROR, None, detail, None, None))
            self._after_probe(run.pair, run.probe, None, None)
        else:  # no process can be forked right now
            self.retry.appendleft((run.pair, run.probe))

    def _exited(self, pid: int, status: int) -> None:
        """A pair's process was reaped: if it sent no verdict, it died without one."""
        self._drain_results()  # what it sent before it died is already there
        run = self.by_pid.get(pid)
        if run is not None and run.final is None and not run.ended:
            run.ended = True
            run.elapsed = time.monotonic() - run.t0
            self._end(run, status)

    # ---------------------------------------------------------------- starting

    def _start(self, pair: Pair, probe: bool) -> None:
        """Ask the zygote to fork ``pair`` (its reply is handled by the loop)."""
        assert self.sock is not None
        limit = self._limit(pair)
        kill_after = max(pair.kill_after, limit)
        nonce = os.urandom(8).hex()
        code, solution, test = (
            -1 if t is None else t for t in (pair.code, pair.solution, pair.test)
        )
        cpu_s = int(kill_after) + 2
        request = b"%d %d %s %d %d %d %d %d" % (
            pair.index,
            probe,
            nonce.encode(),
            cpu_s,
            code,
            solution,
            test,
            pair.reference,
        )
        try:
            self.sock.send(request)
        except OSError:
            self.retry.appendleft((pair, probe))
            self._zygote_lost()
            return
        deadline = min(limit + self.limits.grace_s, kill_after)
        wall_cap = 4.0 * kill_after * self.parallel + 1.0
        run = Running(pair, 0, nonce, 0.0, limit, deadline, wall_cap, probe)
        run.pids_hits = self.pids_hits.count()
        self.running[nonce] = run
        self.starting[pair.index] = run

    # ---------------------------------------------------------------- waiting

    def _wait(self) -> None:
        assert self.sock is not None and self.results is not None
        now = time.monotonic()
        timeout = 1.0
        for r in self.running.values():
            if r.pid and not r.ended:
                left = min(r.deadline - (now - r.t0 - r.delay), r.wall_cap - (now - r.t0))
                timeout = min(timeout, left)
        control, results = self.sock.fileno(), self.results.fileno()
        ready, _, _ = select.select([results, control], [], [], max(0.0, timeout))
        if results in ready:
            self._drain_results()
        if control in ready:
            self._on_zygote()
        now = time.monotonic()
        for run in list(self.running.values()):
            if not run.pid or run.ended:
                continue
            elapsed = now - run.t0
            if elapsed - run.delay < run.deadline and elapsed < run.wall_cap:
                continue
            run.delay = run_delay(run.pid)
            if elapsed - run.delay >= run.deadline or elapsed >= run.wall_cap:
                self._drain_results()  # its verdict may have just arrived
                if run.ended:
                    continue
                run.timed_out, run.effective = True, elapsed - run.delay
                run.stopped = (proc_stat(run.pid) or ("R",))[0] in ("T", "t")
                self._mark_ended(run)

    def _drain_results(self) -> None:
        """Read every pending message on the result socket."""
        assert self.results is not None
        while True:
            try:
                data = self.results.recv(1 << 17)
            except BlockingIOError:
                return
            try:
                msg = json.loads(data)
            except ValueError:
                continue  # not ours: no pair writes malformed messages
            run = self.running.get(str(msg.get("n"))) if isinstance(msg, dict) else None
            if run is None or run.ended:
                continue  # unsigned, forged or late: dropped
            if "taint" in msg:
                run.taints.append((str(msg["taint"]), str(msg.get("detail"))))
            elif "sol" in msg:
                run.sol_done = True
                if run.probe:
                    self._set_state(run.pair, KNOWN_OK)
            else:
                run.final = msg
                self._mark_ended(run)

    # ---------------------------------------------------------------- finishing

    def _mark_ended(self, run: Running) -> None:
        """The pair is over (verdict or deadline); once its pid is known, kill what is
        left of it and settle it."""
        run.ended = True
        run.elapsed = time.monotonic() - run.t0 if run.pid else 0.0
        if run.pid:
            self._end(run)

    def _end(self, run: Running, status: int | None = None) -> None:
        run.delay = max(run.delay, run_delay(run.pid))
        kill_group(run.pid)
        del self.running[run.nonce]
        self.by_pid.pop(run.pid, None)
        self._finish(run, status)

    def _finish(self, run: Running, status: int | None) -> None:
        self.ended.append(run.pid)
        effective = max(0.0, run.elapsed - run.delay) if run.effective is None else run.effective
        pair = run.pair
        foreign = run.final is None and not run.timed_out and _foreign_signal(status)
        crowded = self.pids_hits.count() != run.pids_hits
        if not pair.solo and (run.stopped or foreign or crowded):
            self._interfered(run)
        else:
            outcome = self._outcome(run, status, effective)
            self._emit(pair, outcome)
            self._after_probe(pair, run.probe, run, outcome)
            if outcome[0] in (PASS, FAIL) and pair.test is not None and outcome[1] is not None:
                seconds = outcome[1] / 1e3
                self.finished[pair.test] = self.finished.get(pair.test, 0) + 1
                self.slowest[pair.test] = max(self.slowest.get(pair.test, 0.0), seconds)
        if IS_INIT:
            self._sweep()
            if pair.solo or scratch_is_dirty():
                self.dirty = True

    def _interfered(self, run: Running) -> None:
        """A pair disturbed from outside (killed, stopped, or short of processes while
        a sibling held the pids limit): run it again alone (a crash if it was)."""
        if run.pair.solo:
            self._emit(run.pair, (CRASH, None, "killed from outside the pair", None, None))
        else:
            self.solo.append(run.pair)
        self._after_probe(run.pair, run.probe, None, None)

    def _outcome(self, run: Running, status: int | None, effective: float) -> Outcome:
        msg = run.final
        if msg is None and run.timed_out:
            return TIMEOUT, effective * 1e3, f"exceeded {run.limit:g} s", None, None
        if msg is None:
            return CRASH, effective * 1e3, describe_status(status), None, None
        kind = msg.get("status")
        ms = float(msg.get("ms", effective * 1e3))
        detail = msg.get("detail")
        detail = None if detail is None else str(detail)
        outcome: Outcome
        if kind == "exit":
            outcome = CRASH, ms, detail, None, None
        elif ms > run.limit * 1e3:
            late = f"finished after {ms:.0f} ms"
            outcome = TIMEOUT, ms, late, None, None
        elif kind in ("exception", "no_result", "tampered"):
            outcome = ERROR, ms, detail, None, None
        elif kind == "result":
            run_n, passed = int(msg["tests_run"]), int(msg["tests_passed"])
            outcome = (PASS if msg.get("ok") is True else FAIL), ms, detail, run_n, passed
        else:
            outcome = CRASH, ms, "malformed report", None, None
        if run.taints and outcome[0] in (PASS, FAIL, ERROR):
            worst = CRASH if any(t == CRASH for t, _ in run.taints) else ERROR
            outcome = worst, ms, run.taints[0][1], None, None
        return outcome

    def _after_probe(
        self, pair: Pair, probe: bool, run: Running | None, outcome: Outcome | None
    ) -> None:
        """Settle the probe's solution: known good, failed (fail the rest), or unknown."""
        if not probe or pair.solution is None:
            return
        group = self.group_of[pair.solution, pair.reference]
        failed = None if run is None or outcome is None else _solution_failure(run, outcome)
        if failed is None:
            if group.state == PROBING:
                group.state = KNOWN_OK if run is not None and run.sol_done else UNKNOWN
            return
        group.state = KNOWN_OK
        kept: deque[Pair] = deque()
        kind, detail, limit = failed
        assert outcome is not None
        for other in group.pending:
            if kind == TIMEOUT and self._limit(other) > limit:
                kept.append(other)  # a longer limit might let the solution finish
                continue
            self._emit(other, (kind, outcome[1], detail, None, None))
        group.pending = kept
        if kept:
            group.state = UNKNOWN

    def _emit(self, pair: Pair, outcome: Outcome) -> None:
        kind, ms, detail, run, passed = outcome
        self.out.result(
            pair.key, kind, tests_run=run, tests_passed=passed, duration_ms=ms, detail=detail
        )

    def _sweep(self) -> None:
        """As PID 1: kill processes outside the zygote and every running pair's group
        (e.g. escaped with setsid), reap the zombies they leave. Pairs that ended
        lately are skipped: they are the zygote's to reap. So are the groups of pairs
        the zygote forked whose pid the scheduler has not read yet (a pair may start
        a process before then)."""
        alive = {r.pid for r in self.running.values()}
        alive.add(self.zygote)
        known = alive.union(self.ended)
        unread = bool(self.starting)
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in known or name == "1":
                continue
            pid = int(name)
            info = proc_stat(pid)
            if info is None:
                continue
            state, parent, group = info
            if state == "Z":
                if parent == 1:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
            elif group not in alive and parent != self.zygote:
                if unread and group not in self.ended and self._forked_pair(group):
                    continue
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _forked_pair(self, pid: int) -> bool:
        """Whether ``pid`` is a process the zygote forked (a pair's)."""
        info = proc_stat(pid)
        return info is not None and info[1] == self.zygote

    def _clean(self) -> None:
        """Nothing runs: kill every leftover process, empty /tmp and /dev/shm."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            self._sweep()
            others = [n for n in os.listdir("/proc") if n.isdigit() and int(n) != 1]
            if all(int(n) == self.zygote or _is_zombie_child(int(n), self.zygote) for n in others):
                break
            time.sleep(0.005)
        empty_scratch()
        self.dirty = False


def _is_zombie_child(pid: int, parent: int) -> bool:
    info = proc_stat(pid)
    return info is None or (info[0] == "Z" and info[1] == parent)


def _solution_failure(run: Running, outcome: Outcome) -> tuple[str, str, float] | None:
    """How a probe's solution part failed on its own, if it did: (outcome, detail,
    the limit it overran or infinity)."""
    if run.sol_done or run.taints:
        return None
    if outcome[0] == TIMEOUT:
        return TIMEOUT, f"the solution alone exceeded {run.limit:g} s", run.limit
    msg = run.final
    if msg is not None and msg.get("phase") == "solution" and outcome[0] in (ERROR, CRASH):
        return outcome[0], f"the solution alone failed: {outcome[2]}", float("inf")
    return None


def _foreign_signal(status: int | None) -> bool:
    """Whether the process died of a signal (the runner sent none yet)."""
    return status is not None and os.WIFSIGNALED(status)


def _text(raw: object, texts: list[str]) -> int:
    """Index of a job's code in ``texts`` (a literal string is appended)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(texts):
        return raw
    if isinstance(raw, str):
        texts.append(raw)
        return len(texts) - 1
    raise ValueError("job code must be a text index or a string")


def _reference(raw: object) -> bool:
    """Whether a job's ``globals`` asks for CodeRM's executor's namespace (absent:
    the strict one); any other value is a malformed job."""
    if raw is None:
        return False
    if raw == REFERENCE_GLOBALS:
        return True
    raise ValueError(f"unknown globals {raw!r}")


def parse_pair(index: int, job: JsonDict, texts: list[str]) -> Pair:
    """A unittest job of the batch as a :class:`Pair` (its code appended to ``texts``
    if given as a string); ValueError/KeyError if malformed."""
    limit = float(job.get("time_limit_s", 1.0))
    kill_after = float(job.get("kill_after_s", 2.0 * limit))
    adaptive = Adaptive.from_json(job.get("adaptive"))
    reference = _reference(job.get("globals"))
    key = str(job["key"])
    if "solution" in job and "test" in job:
        solution, test = _text(job["solution"], texts), _text(job["test"], texts)
        return Pair(index, key, solution, test, None, limit, kill_after, adaptive, reference)
    code = _text(job["code"], texts)
    return Pair(index, key, None, None, code, limit, kill_after, adaptive, reference)
