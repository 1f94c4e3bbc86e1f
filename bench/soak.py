"""Soak: runs through the services for a given time while executor replicas come and go,
with the services' resources sampled all along; exits non-zero on growth.

Against the stack ``make up`` started (``deploy/local/up.sh``), for ``--minutes``
(30): keeps ``--in-flight`` runs going (``coderm run --detach`` on the first
``--problems`` problems of the CodeT HumanEval set, ``codegen16b`` policy and test
model, ``--n`` x ``--m`` samples, imported by ``make reproduce-codet`` or ``make demo``),
each with an assert time limit and a hidden-test time limit no run in the database
has used yet (one millisecond apart), so every pair and label is executed afresh
rather than read from the execution cache; every ``--repeat-every``-th run repeats
the previous one's limits instead (all cached: the cache-hit path). Every
``--scale-every`` seconds the executor replicas move to the next count of
``--schedule`` (1,3,2: 1 -> 3 -> 2 -> 1 -> 3 ...) through ``deploy/local/scale.sh``;
at the end they go back to the count found at the start.

Every ``--interval`` seconds it samples each service process of ``var/run/*.pid``
(resident memory and open file descriptors from ``/proc/<pid>``, and its TCP
connections to PostgreSQL and RabbitMQ), the database's client connections in
``pg_stat_activity`` by database, user and application, the depth of every work and
dead-letter queue and the consumers of the work queues (passive declares), and the
sandbox containers on the Docker host (``docker ps -a`` with the ``coderm.sandbox``
label). The samples go to ``var/soak/<start>.jsonl``.

At the end it prints, per series, the least-squares slope an hour over the second half
(after the warm-up), beside the mean, the floor's rise and a verdict
(``bench/soak_stats.py``: memory growth past 20 MB/h and 10 % of the mean an hour;
a count whose floor rises past a small allowance), and the runs: submitted, finished,
failed, pairs executed. Exit status 1 on growth or a failed run.

    make up
    .venv/bin/python -m bench.soak [--minutes 30] [--interval 5] [--scale-every 150]
        [--schedule 1,3,2] [--in-flight 2] [--problems 20] [--n 10] [--m 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aio_pika
import aio_pika.exceptions
import asyncpg
import httpx

from bench.soak_stats import (
    CONNECTIONS,
    CONTAINERS,
    DEAD_QUEUE,
    FDS,
    MEMORY,
    WORK_QUEUE,
    Judgement,
    Rule,
    covers,
    judge,
    window,
)
from shared.broker import RETRY_STEPS, WORK_KINDS, Topology
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / "var" / "run"
SCALE = ROOT / "deploy" / "local" / "scale.sh"
APPLICATION = "coderm-soak"
PG_PORT, MQ_PORT = 5432, 5672
SANDBOX_LABEL = "coderm.sandbox=1"
SESSION_LABEL = "coderm.sandbox.test-session"
OWNER_LABEL = "coderm.sandbox.owner"
ASSERT_MS = range(101, 1000)
GROUND_TRUTH_MS = range(3001, 10000)


# --- series -----------------------------------------------------------------------------


@dataclass
class Series:
    """One sampled quantity: its rule (``None``: shown, not judged) and samples."""

    rule: Rule | None
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass
class Recorder:
    """Every series by name, and the raw samples written as JSON lines."""

    out: TextIO
    series: dict[str, Series] = field(default_factory=dict)

    def add(self, name: str, rule: Rule | None, t: float, value: float) -> None:
        """Append one sample to series ``name`` (created with ``rule`` on first sight)."""
        entry = self.series.setdefault(name, Series(rule))
        entry.times.append(t)
        entry.values.append(value)

    def write(self, t: float, sample: dict[str, float]) -> None:
        """One JSON line: the sample's time and its values."""
        self.out.write(json.dumps({"t": round(t, 3), **sample}) + "\n")
        self.out.flush()


# --- processes --------------------------------------------------------------------------


def service_pids() -> dict[str, int]:
    """``var/run/<name>.pid`` of the live processes: name -> pid."""
    found: dict[str, int] = {}
    for pidfile in sorted(RUN_DIR.glob("*.pid")):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if Path(f"/proc/{pid}").exists():
                found[pidfile.stem] = pid
    return found


def _tcp_peers(pid: int) -> dict[int, int]:
    """Socket inode -> remote port of the established TCP connections in ``pid``'s
    network namespace."""
    peers: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "01":
                    peers[int(cols[9])] = int(cols[2].rsplit(":", 1)[1], 16)
    return peers


@dataclass(frozen=True)
class ProcessSample:
    """One process's resident memory (MB), open fds and connections to the database
    and the broker."""

    rss_mb: float
    fds: int
    pg: int
    mq: int


def sample_process(pid: int) -> ProcessSample | None:
    """Read ``/proc/<pid>``; ``None`` when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        links = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        return None  # exiting: its memory is gone already
    rss_mb = int(match.group(1)) / 1024
    peers = _tcp_peers(pid)
    inodes = [int(link[8:-1]) for link in links if link.startswith("socket:[")]
    remote = [peers[inode] for inode in inodes if inode in peers]
    return ProcessSample(rss_mb, len(links), remote.count(PG_PORT), remote.count(MQ_PORT))


# --- database, broker, Docker -----------------------------------------------------------


def database_dsn() -> str:
    """The services' database as an asyncpg DSN."""
    return ServiceSettings().database.url.get_secret_value().replace("+asyncpg", "")


DATABASE = urlsplit(database_dsn()).path.lstrip("/")


async def pg_activity(connection: asyncpg.Connection) -> dict[str, int]:
    """Client connections by ``database/user/application`` (``-`` for none), the soak's
    own left out."""
    rows = await connection.fetch(
        "SELECT coalesce(datname, '-') AS db, coalesce(usename, '-') AS usr,"
        " coalesce(nullif(application_name, ''), '-') AS app, count(*) AS n"
        " FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND application_name <> $1 GROUP BY 1, 2, 3",
        APPLICATION,
    )
    return {f"{r['db']}/{r['usr']}/{r['app']}": int(r["n"]) for r in rows}


@dataclass
class QueueReader:
    """Passive declares of the topology's queues on a connection of its own."""

    url: str
    topology: Topology
    _connection: aio_pika.abc.AbstractConnection | None = None
    _channel: aio_pika.abc.AbstractChannel | None = None

    async def _open(self) -> aio_pika.abc.AbstractChannel:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self.url)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        return self._channel

    async def depths(self) -> dict[str, tuple[int, int]]:
        """Queue name -> (messages, consumers) for every work and dead-letter queue, and
        the delay queues of a kind summed under ``<queue>.retry``."""
        out: dict[str, tuple[int, int]] = {}
        for kind in WORK_KINDS:
            names = {
                self.topology.queue(kind): [self.topology.queue(kind)],
                self.topology.dead_queue(kind): [self.topology.dead_queue(kind)],
                f"{self.topology.queue(kind)}.retry": [
                    self.topology.retry_queue(kind, step) for step in RETRY_STEPS
                ],
            }
            for shown, queues in names.items():
                messages = consumers = 0
                for name in queues:
                    channel = await self._open()
                    try:
                        queue = await channel.declare_queue(name, passive=True)
                    except aio_pika.exceptions.ChannelClosed:
                        continue  # not declared (yet): the channel closed, reopen it
                    messages += queue.declaration_result.message_count or 0
                    consumers += queue.declaration_result.consumer_count or 0
                out[shown] = (messages, consumers)
        return out

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@dataclass(frozen=True)
class Containers:
    """Sandbox containers on the Docker host, running or not: the stack's (no test
    session label), those of them whose owner process is gone (orphans), and the test
    sessions' (other users of the shared engine)."""

    ours: int
    orphans: int
    tests: int


async def sandbox_containers() -> Containers:
    """Count the sandbox containers by their labels (``docker ps -a``)."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        "ps",
        "-a",
        "--filter",
        f"label={SANDBOX_LABEL}",
        "--format",
        f'{{{{.Label "{SESSION_LABEL}"}}}} {{{{.Label "{OWNER_LABEL}"}}}}',
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    ours = orphans = tests = 0
    for line in out.decode().splitlines():
        session, _, owner = line.partition(" ")
        if session:
            tests += 1
            continue
        ours += 1
        # an owner token is <instance>.<pid>.<random>
        parts = owner.split(".")
        if len(parts) >= 3 and parts[-2].isdigit() and not _alive(int(parts[-2])):
            orphans += 1
    return Containers(ours, orphans, tests)


@dataclass
class Scrapes:
    """``/metrics`` scrapes of the services, as a Prometheus would make them."""

    done: int = 0
    failed: int = 0
    last_error: str = ""


def service_ports() -> dict[str, int]:
    """``var/run/<name>.port`` of the live processes: name -> metrics port."""
    pids = service_pids()
    ports: dict[str, int] = {}
    for portfile in sorted(RUN_DIR.glob("*.port")):
        with contextlib.suppress(OSError, ValueError):
            if portfile.stem in pids:
                ports[portfile.stem] = int(portfile.read_text().strip())
    return ports


async def scrape(client: httpx.AsyncClient, scrapes: Scrapes) -> None:
    """GET every live service's ``/metrics`` once (its collectors read the broker and the
    database at every scrape: that path runs all soak long too)."""
    for name, port in service_ports().items():
        try:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
            answer.raise_for_status()
            scrapes.done += 1
        except httpx.HTTPError as error:
            scrapes.failed += 1
            scrapes.last_error = f"{name}: {error!r}"


# --- one sample -------------------------------------------------------------------------


async def take_sample(
    recorder: Recorder, t: float, connection: asyncpg.Connection, queues: QueueReader
) -> None:
    """Sample everything once into ``recorder``; a reading that fails is left out."""
    sample: dict[str, float] = {}

    def put(name: str, rule: Rule | None, value: float) -> None:
        recorder.add(name, rule, t, value)
        sample[name] = value

    for name, pid in service_pids().items():
        proc = sample_process(pid)
        if proc is None:
            continue
        process = f"{name}[{pid}]"
        put(f"rss MB {process}", MEMORY, proc.rss_mb)
        put(f"fds {process}", FDS, proc.fds)
        put(f"pg conns {process}", CONNECTIONS, proc.pg)
        put(f"mq conns {process}", CONNECTIONS, proc.mq)
    try:
        for key, count in (await pg_activity(connection)).items():
            # our database's are judged; other databases on the shared server are shown
            rule = CONNECTIONS if key.startswith(f"{DATABASE}/") else None
            put(f"pg_stat_activity {key}", rule, count)
    except (asyncpg.PostgresError, OSError) as error:
        print(f"  t={t:.0f}s pg_stat_activity failed: {error!r}", flush=True)
    try:
        for name, (messages, consumers) in (await queues.depths()).items():
            if name.endswith(".dead"):
                put(f"queue {name}", DEAD_QUEUE, messages)
            elif name.endswith(".retry"):
                put(f"queue {name}", WORK_QUEUE, messages)
            else:
                put(f"queue {name}", WORK_QUEUE, messages)
                put(f"consumers {name}", None, consumers)
    except (aio_pika.exceptions.AMQPError, OSError) as error:
        print(f"  t={t:.0f}s queue depths failed: {error!r}", flush=True)
    containers = await sandbox_containers()
    put("sandbox containers", CONTAINERS, containers.ours)
    put("sandbox containers orphaned", CONTAINERS, containers.orphans)
    put("sandbox containers of test sessions", None, containers.tests)
    recorder.write(t, sample)


# --- runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """A run's assert and hidden-test time limits in milliseconds."""

    assert_ms: int
    ground_truth_ms: int


def fresh_limits(used_assert: set[int], used_gt: set[int]) -> Iterator[Limits]:
    """Limits no stored run has used, ascending (then repeats of the last when spent)."""
    asserts = (ms for ms in ASSERT_MS if ms not in used_assert)
    truths = (ms for ms in GROUND_TRUTH_MS if ms not in used_gt)
    last = Limits(ASSERT_MS[-1], GROUND_TRUTH_MS[-1])
    for a, g in zip(asserts, truths, strict=False):
        last = Limits(a, g)
        yield last
    while True:
        yield last


async def used_limits(connection: asyncpg.Connection) -> tuple[set[int], set[int]]:
    """The assert and hidden-test limits (ms) of the profiles of every stored run."""
    rows = await connection.fetch("SELECT exec_profile, ground_truth_profile FROM runs")
    asserts = {int(m.group(1)) for r in rows if (m := re.search(r"/t(\d+)ms", r[0]))}
    truths = {int(m.group(1)) for r in rows if (m := re.search(r"/t(\d+)ms", r[1]))}
    return asserts, truths


@dataclass
class RunBook:
    """The runs the soak submitted: id -> (limits, cached, submit time)."""

    submitted: dict[uuid.UUID, tuple[Limits, bool, float]] = field(default_factory=dict)
    finished: dict[uuid.UUID, float] = field(default_factory=dict)
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    submit_errors: list[str] = field(default_factory=list)

    @property
    def open(self) -> list[uuid.UUID]:
        """Submitted runs neither finished nor failed."""
        return [r for r in self.submitted if r not in self.finished and r not in self.failed]


async def submit(args: argparse.Namespace, limits: Limits, name: str) -> uuid.UUID:
    """``coderm run ... --detach`` with these limits; the run id."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli.app import main; main()",
        "run",
        *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b"),
        *("--n", str(args.n), "--m", str(args.m), "--problems", str(args.problems)),
        *("--assert-time-limit", f"{limits.assert_ms / 1000:.3f}"),
        *("--ground-truth-time-limit", f"{limits.ground_truth_ms / 1000:.3f}"),
        *("--name", name, "--detach"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode == 0:
        for word in text.split():
            with contextlib.suppress(ValueError):
                return uuid.UUID(word)
    raise RuntimeError(f"coderm run exited {process.returncode}: {text.strip()[-300:]}")


async def submitter(
    args: argparse.Namespace, book: RunBook, limits: Iterator[Limits], clock: Clock
) -> None:
    """Keep ``args.in_flight`` runs open until the soak's end. A run counts from the
    moment its ``coderm run`` starts: the command alone takes seconds on a loaded machine,
    so submissions overlap the open runs rather than wait for them."""
    count = pending = 0
    current = next(limits)
    submitting: set[asyncio.Task[None]] = set()

    async def one(limits: Limits, cached: bool, name: str) -> None:
        nonlocal pending
        try:
            run_id = await submit(args, limits, name)
            book.submitted[run_id] = (limits, cached, clock.elapsed())
        except RuntimeError as error:
            book.submit_errors.append(str(error))
            print(f"  t={clock.elapsed():.0f}s submit failed: {error}", flush=True)
            await asyncio.sleep(5.0)
        finally:
            pending -= 1

    while clock.elapsed() < clock.duration:
        if len(book.open) + pending >= args.in_flight:
            await asyncio.sleep(0.5)
            continue
        cached = count > 0 and args.repeat_every > 0 and count % args.repeat_every == 0
        if not cached and count > 0:
            current = next(limits)
        pending += 1
        task = asyncio.create_task(one(current, cached, f"soak-{clock.stamp}-{count:04d}"))
        submitting.add(task)
        task.add_done_callback(submitting.discard)
        count += 1
    await asyncio.gather(*submitting)


async def poll_runs(connection: asyncpg.Connection, book: RunBook, clock: Clock) -> None:
    """Move the open runs that finished or failed into the book."""
    open_runs = book.open
    if not open_runs:
        return
    rows = await connection.fetch(
        "SELECT id, state, error FROM runs WHERE id = ANY($1::uuid[])", open_runs
    )
    for row in rows:
        if row["state"] == "finished":
            book.finished[row["id"]] = clock.elapsed() - book.submitted[row["id"]][2]
        elif row["state"] == "failed":
            book.failed[row["id"]] = str(row["error"])
            print(f"  t={clock.elapsed():.0f}s run {row['id']} failed: {row['error']}", flush=True)


async def pairs_executed(connection: asyncpg.Connection, runs: list[uuid.UUID]) -> tuple[int, int]:
    """Pairs the soak's runs executed in sandboxes, and their batches done."""
    row = await connection.fetchrow(
        "SELECT coalesce(sum(executed), 0) AS pairs, count(done_at) AS batches"
        " FROM execution_batches WHERE run_id = ANY($1::uuid[])",
        runs,
    )
    assert row is not None
    return int(row["pairs"]), int(row["batches"])


# --- scaling ----------------------------------------------------------------------------


async def scale(count: int, log: TextIO) -> tuple[bool, float]:
    """``deploy/local/scale.sh set count``; whether it worked and its seconds."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(SCALE),
        "set",
        str(count),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    log.write(out.decode(errors="replace"))
    log.flush()
    return process.returncode == 0, time.monotonic() - started


async def executor_count() -> int:
    """``deploy/local/scale.sh count``."""
    process = await asyncio.create_subprocess_exec(
        "bash", str(SCALE), "count", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    return int(out.strip() or 0)


@dataclass
class ScaleLog:
    """Scale operations: (t, from, to, ok, seconds)."""

    steps: list[tuple[float, int, int, bool, float]] = field(default_factory=list)


async def scaler(
    schedule: list[int], every_s: float, clock: Clock, log: TextIO, steps: ScaleLog
) -> None:
    """Walk the schedule (cyclically) one step every ``every_s`` seconds."""
    index = 0
    now = await executor_count()
    while True:
        target = schedule[index % len(schedule)]
        if target != now:
            t = clock.elapsed()
            ok, seconds = await scale(target, log)
            steps.steps.append((t, now, target, ok, seconds))
            print(
                f"  t={t:.0f}s executors {now} -> {target}"
                f" ({'ok' if ok else 'FAILED'}, {seconds:.1f} s)",
                flush=True,
            )
            now = await executor_count()
        index += 1
        wait = index * every_s - clock.elapsed()
        if clock.elapsed() + max(wait, 0.0) >= clock.duration:
            return
        await asyncio.sleep(max(wait, 0.0))


# --- the soak ---------------------------------------------------------------------------


@dataclass
class Clock:
    """The soak's start (monotonic), its length and its name stamp."""

    duration: float
    started: float = field(default_factory=time.monotonic)
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started


def fmt(value: float, digits: int = 1) -> str:
    """A figure, ``-`` for nan."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table(rows: list[tuple[str, Judgement]]) -> str:
    """The judged series as a markdown table."""
    lines = [
        "| series | samples | mean | first | last | min | max | slope /h"
        " | slope/mean /h | floor rise | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, j in rows:
        share = "-" if math.isnan(j.share_per_hour) else f"{100 * j.share_per_hour:+.1f}%"
        lines.append(
            f"| {name} | {j.samples} | {fmt(j.mean)} | {fmt(j.first)} | {fmt(j.last)}"
            f" | {fmt(j.low)} | {fmt(j.high)} | {j.slope_per_hour:+.1f} | {share}"
            f" | {fmt(j.rise, 0)} | {j.verdict} |"
        )
    return "\n".join(lines)


def judge_all(recorder: Recorder, start_s: float, end_s: float) -> list[tuple[str, Judgement]]:
    """Every series over the analysis window; a series that does not cover most of the
    window (a replica that came or went in it) gets no verdict."""
    out = []
    for name in sorted(recorder.series):
        series = recorder.series[name]
        times, values = window(series.times, series.values, start_s)
        if not times:
            continue
        judged = judge(times, values, series.rule or WORK_QUEUE)
        if series.rule is None:
            judged = _with_verdict(judged, "info")
        elif not covers(times, start_s, end_s):
            judged = _with_verdict(judged, "partial")
        out.append((name, judged))
    return out


def _with_verdict(judged: Judgement, verdict: str) -> Judgement:
    fields: dict[str, Any] = {**judged.__dict__, "verdict": verdict}
    return Judgement(**fields)


@dataclass
class Soak:
    """What one soak holds while it runs."""

    args: argparse.Namespace
    clock: Clock
    connection: asyncpg.Connection
    queues: QueueReader
    client: httpx.AsyncClient
    recorder: Recorder
    scale_log: TextIO
    initial: int
    book: RunBook = field(default_factory=RunBook)
    steps: ScaleLog = field(default_factory=ScaleLog)
    scrapes: Scrapes = field(default_factory=Scrapes)

    async def drive(self, limits: Iterator[Limits]) -> float:
        """Submit, scale and sample until the end, then wait for the open runs (at most
        ``--drain`` seconds) and scale back; the seconds sampled."""
        args, clock, book = self.args, self.clock, self.book
        schedule = [int(k) for k in args.schedule.split(",")]
        tasks = [
            asyncio.create_task(submitter(args, book, limits, clock)),
            asyncio.create_task(
                scaler(schedule, args.scale_every, clock, self.scale_log, self.steps)
            ),
        ]
        try:
            next_report, next_scrape = 60.0, 0.0
            while clock.elapsed() < clock.duration:
                t = clock.elapsed()
                await take_sample(self.recorder, t, self.connection, self.queues)
                if t >= next_scrape:
                    next_scrape += args.scrape_every
                    await scrape(self.client, self.scrapes)
                await poll_runs(self.connection, book, clock)
                if t >= next_report:
                    next_report += 60.0
                    print(
                        f"  t={t:.0f}s runs submitted {len(book.submitted)}, finished"
                        f" {len(book.finished)}, failed {len(book.failed)}, executors"
                        f" {await executor_count()}",
                        flush=True,
                    )
                await asyncio.sleep(max(0.0, args.interval - (clock.elapsed() - t)))
            end = clock.elapsed()
            await asyncio.gather(*tasks)
            drain_until = time.monotonic() + args.drain
            while book.open and time.monotonic() < drain_until:
                await asyncio.sleep(2.0)
                await poll_runs(self.connection, book, clock)
        finally:
            for task in tasks:
                task.cancel()
            ok, _ = await scale(self.initial, self.scale_log)
            if not ok:
                print(f"could not scale the executors back to {self.initial}", flush=True)
        return end


async def soak(args: argparse.Namespace) -> int:
    """Run the soak; the exit status."""
    clock = Clock(args.minutes * 60.0)
    out_dir = ROOT / "var" / "soak"
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path = out_dir / f"{clock.stamp}.jsonl"
    initial = await executor_count()
    if initial < 1 or not service_pids():
        raise SystemExit("no services running: start them with `make up`")
    connection = await asyncpg.connect(
        database_dsn(), server_settings={"application_name": APPLICATION}
    )
    settings = ServiceSettings()
    queues = QueueReader(
        settings.broker.url.get_secret_value(), Topology(settings.broker.queue_prefix)
    )
    limits = fresh_limits(*await used_limits(connection))
    print(
        f"soak {clock.stamp}: {args.minutes:g} min, a sample every {args.interval:g} s"
        f" ({samples_path.relative_to(ROOT)}), /metrics scraped every {args.scrape_every:g} s,"
        f" executors {args.schedule} every {args.scale_every:g} s (now {initial}),"
        f" {args.in_flight} runs in flight of {args.problems} problems x {args.n} x {args.m}",
        flush=True,
    )
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            with (
                samples_path.open("w") as samples_file,
                (ROOT / "var" / "log" / "soak-scale.log").open("a") as scale_log,
            ):
                run = Soak(
                    args,
                    clock,
                    connection,
                    queues,
                    client,
                    Recorder(samples_file),
                    scale_log,
                    initial,
                )
                end = await run.drive(limits)
        rows = judge_all(run.recorder, clock.duration / 2, end)
        pairs, batches = await pairs_executed(connection, list(run.book.submitted))
    finally:
        await connection.close()
        await queues.close()
    return report(run, end, rows, pairs, batches)


def report(
    run: Soak, end: float, rows: list[tuple[str, Judgement]], pairs: int, batches: int
) -> int:
    """Print the tables; the exit status (1 on growth or a failed run)."""
    clock, book, steps = run.clock, run.book, run.steps
    minutes = end / 60.0
    cached = sum(1 for _, c, _ in book.submitted.values() if c)
    walls = sorted(book.finished.values())
    p50 = statistics.median(walls) if walls else float("nan")
    p95 = walls[min(len(walls) - 1, round(0.95 * len(walls)) - 1)] if walls else float("nan")
    print()
    print(
        f"soak {clock.stamp}: {minutes:.1f} min; analysis window {clock.duration / 120:.1f}"
        f" min to the end (after warm-up)"
    )
    print(
        f"runs: {len(book.submitted)} submitted ({cached} repeats, cached), "
        f"{len(book.finished)} finished ({len(book.finished) / minutes:.1f}/min), "
        f"{len(book.failed)} failed, {len(book.open)} unfinished, "
        f"{len(book.submit_errors)} submissions failed; run wall p50 {fmt(p50)} s, "
        f"p95 {fmt(p95)} s"
    )
    print(f"pairs executed in sandboxes: {pairs} ({pairs / minutes:.0f}/min) in {batches} batches")
    failed_steps = sum(1 for s in steps.steps if not s[3])
    path = " ".join(f"{s[2]}@{s[0]:.0f}s" for s in steps.steps)
    print(f"executor scaling: {len(steps.steps)} steps ({failed_steps} failed): {path}")
    print(
        f"/metrics scrapes: {run.scrapes.done} answered, {run.scrapes.failed} failed"
        + (f" (last: {run.scrapes.last_error})" if run.scrapes.failed else "")
    )
    judged = [(name, j) for name, j in rows if j.verdict not in ("partial", "info")]
    others = [(name, j) for name, j in rows if j.verdict in ("partial", "info")]
    print()
    print(table(judged))
    print()
    print("Not judged: replicas that started or stopped in the window (partial), and series")
    print("shown for information (consumers follow the scaling; other users' containers):")
    print()
    print(table(others))
    grown = [name for name, j in rows if j.growth]
    print()
    if grown:
        print(f"GROWTH in {len(grown)} series: {', '.join(grown)}")
    else:
        print("no growth: every judged series within its threshold")
    if book.failed:
        print(f"{len(book.failed)} runs failed")
    return 1 if grown or book.failed else 0


def main() -> int:
    """Parse the options and run the soak."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--scale-every", type=float, default=150.0, help="seconds a step")
    parser.add_argument("--schedule", default="1,3,2", help="executor replicas, cyclically")
    parser.add_argument("--in-flight", type=int, default=2, help="runs open at once")
    parser.add_argument("--repeat-every", type=int, default=4, help="every k-th run is cached")
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--n", type=int, default=10, help="solutions a problem")
    parser.add_argument("--m", type=int, default=10, help="test samples a problem")
    parser.add_argument("--scrape-every", type=float, default=15.0, help="seconds")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for runs")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
