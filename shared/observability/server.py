"""A service's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``.

One small HTTP/1.1 server (``asyncio.start_server``, one request a connection) runs in
the service's own event loop, so an answer also shows that the loop is not blocked:

- ``/healthz`` (liveness) answers 200 whenever the loop answers;
- ``/readyz`` (readiness) answers 200 when the service has started consuming and every
  probe passed (by default a passive declare of the work exchange on the broker and a
  ``SELECT 1`` on the database, each bounded by ``timeout_s``), else 503; both give a
  JSON object naming each check and, for a failed one, why;
- ``/metrics`` renders ``prometheus_client``'s registry (the counters of
  :mod:`shared.observability.metrics`, and the process's own) with the gauges of the
  scrape-time collectors: queue depths read from the broker, and the progress of running
  runs read from the database. A collector that fails or times out leaves its gauges
  out of that scrape and sets ``coderm_collector_up{collector=...}`` to 0.

Why scrape-time collectors rather than gauges the handlers set: a queue's depth and a
run's progress belong to the broker and the database, not to a process, so they are
read where they are kept, when asked, and never go stale when a process dies. Every
service reports them, so a dashboard or rule takes ``max by (queue)`` or
``max by (run_id)`` over the instances (deploy/prometheus/alerts.yml does).

A port that cannot be bound is logged (``observability.unavailable``) and the service
runs on without the endpoint: metrics must never stop the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import structlog
from aio_pika.abc import AbstractRobustChannel
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.broker import WORK_KINDS, Broker
from shared.db.models import ExecutionBatch, Run, RunProblem
from shared.enums import ProblemState, RunState
from shared.observability import metrics

log = structlog.get_logger(__name__)

Probe = Callable[[], Awaitable[None]]
"""A readiness check: returns when the dependency answers, raises (why) otherwise."""
ScrapeCollector = Callable[[], Awaitable[Sequence[Metric]]]
"""Reads metric families when ``/metrics`` is scraped."""
State = Literal["starting", "serving", "stopping"]

MAX_HEADER_LINES = 100


@dataclass
class Endpoint:
    """The HTTP endpoint of one service; an async context manager that listens on
    ``host:port`` (port 0: any free port, see :attr:`bound_port`) until it exits.

    ``state`` is ``starting`` until :meth:`serving`, ``stopping`` after
    :meth:`stopping`; only ``serving`` can be ready.
    """

    service: str
    host: str
    port: int
    probes: Mapping[str, Probe] = field(default_factory=dict)
    collectors: Mapping[str, ScrapeCollector] = field(default_factory=dict)
    timeout_s: float = 3.0
    registry: CollectorRegistry = REGISTRY
    request_timeout_s: float = 10.0
    state: State = "starting"
    _server: asyncio.Server | None = None
    _failing: set[str] = field(default_factory=set)

    async def __aenter__(self) -> Endpoint:
        try:
            self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        except OSError as error:
            log.error("observability.unavailable", host=self.host, port=self.port, error=str(error))
            return self
        log.info("observability.listening", host=self.host, port=self.bound_port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def bound_port(self) -> int | None:
        """The port listened on (None when not listening)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    def serving(self) -> None:
        """The service consumes: it may be ready."""
        self.state = "serving"

    def stopping(self) -> None:
        """The service is shutting down: it is no longer ready."""
        self.state = "stopping"

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether the service is ready, and each check's ``ok`` or why not."""
        names = list(self.probes)
        results = await asyncio.gather(*(self._check(self.probes[n]) for n in names))
        checks: dict[str, str] = {"service": "ok" if self.state == "serving" else self.state}
        checks.update(zip(names, results, strict=True))
        return all(v == "ok" for v in checks.values()), checks

    async def _check(self, probe: Probe) -> str:
        try:
            async with asyncio.timeout(self.timeout_s):
                await probe()
        except TimeoutError:
            return f"no answer in {self.timeout_s:g} s"
        except Exception as error:
            kind, detail = type(error).__name__, str(error)
            return (f"{kind}: {detail}" if detail else kind)[:300]
        return "ok"

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type (text or OpenMetrics by ``accept``)."""
        names = list(self.collectors)
        results = await asyncio.gather(*(self._collect(n) for n in names))
        up = GaugeMetricFamily(
            "coderm_collector_up",
            "Whether a scrape-time collector answered in this scrape (1) or not (0).",
            labels=["service", "collector"],
        )
        families: list[Metric] = [up]
        for name, found in zip(names, results, strict=True):
            up.add_metric([self.service, name], 0.0 if found is None else 1.0)
            families.extend(found or ())
        encoder, content_type = choose_encoder(accept)
        return encoder(_Scrape(self.registry, families)), content_type

    async def _collect(self, name: str) -> Sequence[Metric] | None:
        """A collector's families, or None when it failed (logged when it starts and
        stops failing, not at every scrape)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                found = await self.collectors[name]()
        except Exception as error:  # a failed collector must not fail the scrape
            if name not in self._failing:
                self._failing.add(name)
                log.warning("observability.collector_failed", collector=name, error=repr(error))
            return None
        if name in self._failing:
            self._failing.discard(name)
            log.info("observability.collector_recovered", collector=name)
        return found

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                method, path, headers = await _read_request(reader)
            status, content_type, body = await self._respond(method, path, headers)
            writer.write(_response(status, content_type, body, head=method == "HEAD"))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass  # no proper request in time, or the client left
        except Exception:
            log.exception("observability.request_failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"only GET and HEAD\n"
        if path == "/metrics":
            body, content_type = await self.scrape(headers.get("accept", ""))
            return 200, content_type, body
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            ready, checks = await self.readiness()
            payload = {"service": self.service, "ready": ready, "checks": checks}
            return (200 if ready else 503), "application/json", json.dumps(payload).encode()
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n"


class _Scrape(Collector):
    """The registry's metrics and one scrape's collected families, for an encoder."""

    def __init__(self, registry: CollectorRegistry, families: Iterable[Metric]) -> None:
        self.registry = registry
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        yield from self.registry.collect()
        yield from self.families


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """The method, path and headers (lower-case names) of one HTTP request."""
    method, target, _version = (await reader.readline()).decode("latin-1").split()
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method.upper(), urlsplit(target).path, headers


def _response(status: int, content_type: str, body: bytes, head: bool = False) -> bytes:
    phrase = http.HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


# --- the probes and collectors of a service -----------------------------------------------


def database_probe(sessions: async_sessionmaker[AsyncSession]) -> Probe:
    """Readiness of the database: ``SELECT 1`` answers."""

    async def probe() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))

    return probe


@dataclass
class BrokerProbe:
    """Readiness of the broker and the depth of the work queues, read on a channel of
    the service's connection kept for this (a passive declare of a missing object
    closes a channel, never the consumers' ones)."""

    broker: Broker
    _channel: AbstractRobustChannel | None = None

    async def _open(self) -> AbstractRobustChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.broker.connection.channel()
        return self._channel

    async def check(self) -> None:
        """A passive declare of the work exchange answers."""
        channel = await self._open()
        await channel.declare_exchange(self.broker.topology.exchange, passive=True, robust=False)

    async def queue_depths(self) -> Sequence[Metric]:
        """Messages ready and consumers of each work queue, messages in each dead-letter
        queue (passive declares: what RabbitMQ counts now)."""
        labels = ["service", "queue"]
        ready = GaugeMetricFamily(
            "coderm_queue_messages", "Messages ready in a work queue.", labels=labels
        )
        consumers = GaugeMetricFamily(
            "coderm_queue_consumers", "Consumers of a work queue.", labels=labels
        )
        dead = GaugeMetricFamily(
            "coderm_dead_letter_messages",
            "Messages waiting in a work queue's dead-letter queue (coderm dead-letters).",
            labels=labels,
        )
        channel = await self._open()
        topology = self.broker.topology
        for kind in WORK_KINDS:
            work = await channel.declare_queue(topology.queue(kind), passive=True, robust=False)
            letters = await channel.declare_queue(
                topology.dead_queue(kind), passive=True, robust=False
            )
            found, left = work.declaration_result, letters.declaration_result
            ready.add_metric([metrics.service(), kind], float(found.message_count or 0))
            consumers.add_metric([metrics.service(), kind], float(found.consumer_count or 0))
            dead.add_metric([metrics.service(), kind], float(left.message_count or 0))
        return [ready, consumers, dead]

    async def aclose(self) -> None:
        """Close the channel (before the connection closes)."""
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()
        self._channel = None


def run_progress(sessions: async_sessionmaker[AsyncSession]) -> ScrapeCollector:
    """The progress of every running run, read from the database (three grouped
    queries over the running runs' rows, by their primary keys)."""

    async def collect() -> Sequence[Metric]:
        async with sessions() as session:
            running = await session.execute(
                select(Run.id, Run.created_at).where(Run.state == RunState.RUNNING.value)
            )
            runs = {run_id: created for run_id, created in running.tuples()}
            ids = list(runs)
            if not ids:
                return progress_families(metrics.service(), {}, [], [])
            problems = (
                await session.execute(
                    select(
                        RunProblem.run_id,
                        RunProblem.state,
                        func.count(),
                        func.max(RunProblem.scored_at),
                    )
                    .where(RunProblem.run_id.in_(ids))
                    .group_by(RunProblem.run_id, RunProblem.state)
                )
            ).tuples()
            batches = (
                await session.execute(
                    select(
                        ExecutionBatch.run_id,
                        func.count(),
                        func.count(ExecutionBatch.done_at),
                        func.max(ExecutionBatch.done_at),
                    )
                    .where(ExecutionBatch.run_id.in_(ids))
                    .group_by(ExecutionBatch.run_id)
                )
            ).tuples()
            return progress_families(
                metrics.service(),
                {run_id: created.timestamp() for run_id, created in runs.items()},
                [(r, s, n, at.timestamp() if at else None) for r, s, n, at in problems],
                [(r, n, done, at.timestamp() if at else None) for r, n, done, at in batches],
            )

    return collect


def progress_families(
    service: str,
    runs: Mapping[Any, float],
    problems: Iterable[tuple[Any, str, int, float | None]],
    batches: Iterable[tuple[Any, int, int, float | None]],
) -> list[Metric]:
    """The run-progress gauges of running runs (``runs``: id -> created at), from their
    problems by state (count, last scored at) and batches (count, done, last done at);
    times are Unix seconds."""
    labels = ["service", "run_id"]
    by_state = GaugeMetricFamily(
        "coderm_run_problems", "A running run's problems by state.", labels=[*labels, "state"]
    )
    batch_states = GaugeMetricFamily(
        "coderm_run_batches",
        "A running run's execution batches, done or pending.",
        labels=[*labels, "state"],
    )
    ratio = GaugeMetricFamily(
        "coderm_run_progress_ratio",
        "Share of a running run's problems scored (0 to 1).",
        labels=labels,
    )
    last = GaugeMetricFamily(
        "coderm_run_last_progress_timestamp_seconds",
        "When a running run last moved: created, a batch done or a problem scored.",
        labels=labels,
    )
    latest = dict(runs)
    totals = dict.fromkeys(runs, 0)
    scored = dict.fromkeys(runs, 0)
    for run_id, state, count, at in problems:
        by_state.add_metric([service, str(run_id), state], float(count))
        totals[run_id] = totals.get(run_id, 0) + count
        if state == ProblemState.SCORED.value:
            scored[run_id] = scored.get(run_id, 0) + count
        if at is not None:
            latest[run_id] = max(latest.get(run_id, at), at)
    for run_id, count, done, at in batches:
        batch_states.add_metric([service, str(run_id), "done"], float(done))
        batch_states.add_metric([service, str(run_id), "pending"], float(count - done))
        if at is not None:
            latest[run_id] = max(latest.get(run_id, at), at)
    for run_id in runs:
        total = totals.get(run_id, 0)
        ratio.add_metric([service, str(run_id)], scored.get(run_id, 0) / total if total else 0.0)
        last.add_metric([service, str(run_id)], latest[run_id])
    return [by_state, batch_states, ratio, last]
