"""Metrics and health (shared/observability): the counters the broker, the executor and
the generator count into, the run-progress gauges, and the HTTP endpoint's answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, cast

import aiormq
import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import ValidationError

from services.generator.backends import Work
from services.generator.engine import Generated, PromptRequest
from services.generator.generating import GeneratingBackend
from services.generator.pool import EnginePool
from shared.broker import ATTEMPT_HEADER, MAX_ATTEMPTS, Broker, Topology
from shared.core.prompts import Prompt
from shared.core.sampling import RunGeneration, SamplingSettings
from shared.db.models import Model, Problem
from shared.enums import CompletionFormat, Role
from shared.errors import PermanentError
from shared.messages import ScoreProblem
from shared.observability import metrics
from shared.observability.server import Endpoint, Probe, ScrapeCollector, progress_families
from shared.settings import (
    ExecutorSettings,
    ExtractorSettings,
    GeneratorSettings,
    ScorerSettings,
    ServiceSettings,
)

SERVICE = "unit-test"


@pytest.fixture(autouse=True)
def service_label() -> Iterator[None]:
    """Count as a service of our own, so other tests' counts never mix in."""
    before = metrics.service()
    metrics.set_service(SERVICE)
    yield
    metrics.set_service(before)


def value(name: str, **labels: str) -> float:
    """A sample of the default registry (0 when the series does not exist)."""
    return REGISTRY.get_sample_value(name, {"service": SERVICE, **labels}) or 0.0


def fresh_queue() -> str:
    """A queue label no other test used."""
    return f"q-{uuid.uuid4().hex[:8]}"


# --- the counters -------------------------------------------------------------------------


def test_consuming_starts_every_message_counter_at_zero() -> None:
    queue = fresh_queue()
    names = ("handled", "failed", "retried", "dead_lettered")
    assert all(
        REGISTRY.get_sample_value(
            f"coderm_messages_{n}_total", {"service": SERVICE, "queue": queue}
        )
        is None
        for n in names
    )
    metrics.consuming(queue)
    for name in names:
        assert (
            REGISTRY.get_sample_value(
                f"coderm_messages_{name}_total", {"service": SERVICE, "queue": queue}
            )
            == 0.0
        )


def test_pairs_are_counted_by_outcome() -> None:
    before = {o: value("coderm_pairs_executed_total", outcome=o) for o in ("pass", "fail")}
    metrics.pairs_executed(["pass", "fail", "pass", "pass"])
    assert value("coderm_pairs_executed_total", outcome="pass") == before["pass"] + 3
    assert value("coderm_pairs_executed_total", outcome="fail") == before["fail"] + 1


def sample(prompt: int | None, completion: int | None) -> Generated:
    return Generated("x", prompt, completion, "stop", 1.0)


def test_a_requests_prompt_is_counted_once_its_completions_each() -> None:
    model = f"m-{uuid.uuid4().hex[:6]}"
    metrics.generated(model, [sample(7, 3), sample(7, 5), sample(7, None)])
    assert value("coderm_generation_tokens_total", model=model, kind="prompt") == 7
    assert value("coderm_generation_tokens_total", model=model, kind="completion") == 8
    assert value("coderm_generated_samples_total", model=model) == 3


class FakeSandbox:
    """Runs batches by a script: each run returns the next result or raises it."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.calls: list[tuple[object, object, bool]] = []

    async def run_batch(
        self, jobs: object, progress: object = None, site_packages: bool = True
    ) -> str:
        self.calls.append((jobs, progress, site_packages))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return str(step)


async def test_counted_sandbox_counts_starts_and_failures_and_passes_everything_on() -> None:
    starts, failures = value("coderm_sandbox_starts_total"), value("coderm_sandbox_failures_total")
    inner = FakeSandbox(RuntimeError("container broke"), "results")
    counted = metrics.CountedSandbox(inner)
    with pytest.raises(RuntimeError, match="broke"):
        await counted.run_batch(["job"], None, site_packages=False)
    assert await counted.run_batch(["job"], print) == "results"
    assert inner.calls == [(["job"], None, False), (["job"], print, True)]
    assert value("coderm_sandbox_starts_total") == starts + 2
    assert value("coderm_sandbox_failures_total") == failures + 1


class Engine:
    """An engine that answers every request with ``n`` samples."""

    async def generate(self, request: PromptRequest) -> list[Generated]:
        return [sample(11, 4) for _ in range(request.sampling.n)]

    async def aclose(self) -> None:
        return None


async def test_the_generator_counts_the_tokens_it_generated() -> None:
    async def make(_model: Model) -> Engine:
        return Engine()

    name = f"gen-{uuid.uuid4().hex[:6]}"
    model = Model(id=1, name=name, backend="openai", endpoint="http://x", config={})
    work = Work(
        run_id=uuid.uuid4(),
        model=model,
        problem=Problem(id=1, task_id="t/0", prompt="", entry_point="f"),
        role=Role.SOLUTION,
        count=3,
        generation=RunGeneration(),
    )
    backend = GeneratingBackend(
        cast(Any, None), EnginePool({"openai": make}, frozenset(), local_capacity=1)
    )
    prompt = Prompt(CompletionFormat.COMPLETION, text="def f():")
    samples = await backend._generate(work, prompt, SamplingSettings(), 0)
    assert len(samples) == 3
    assert value("coderm_generation_tokens_total", model=name, kind="prompt") == 11
    assert value("coderm_generation_tokens_total", model=name, kind="completion") == 12


# --- the broker's consume path ------------------------------------------------------------


class FakeExchange:
    """A confirming exchange that keeps what was published to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, message: Any, routing_key: str, mandatory: bool = True) -> Any:
        self.published.append((routing_key, dict(message.headers or {})))
        return aiormq.spec.Basic.Ack()


class FakeDelivery:
    """An incoming message that records how it was settled."""

    def __init__(self, body: bytes, attempt: int = 1) -> None:
        self.body = body
        self.headers = {ATTEMPT_HEADER: attempt}
        self.content_type = "application/json"
        self.routing_key = "score"
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("nack")


def fake_broker() -> tuple[Broker, FakeExchange, FakeExchange]:
    dead, retry = FakeExchange("dlx"), FakeExchange("retry")
    broker = Broker(
        connection=cast(Any, None),
        channel=cast(Any, None),
        exchange=cast(Any, FakeExchange("work")),
        dead_exchange=cast(Any, dead),
        retry_exchange=cast(Any, retry),
        topology=Topology("unit"),
        prefetch=1,
    )
    return broker, dead, retry


MESSAGE = ScoreProblem(run_id=uuid.uuid4(), problem_id=1).to_body()


async def deliver(
    broker: Broker, queue: str, handler: Any, body: bytes = MESSAGE, attempt: int = 1
) -> FakeDelivery:
    delivery = FakeDelivery(body, attempt)
    await broker._handle(queue, ScoreProblem, handler, cast(Any, delivery))
    return delivery


def counts(queue: str) -> dict[str, float]:
    out = {
        n: value(f"coderm_messages_{n}_total", queue=queue)
        for n in ("handled", "failed", "retried", "dead_lettered")
    }
    for outcome in ("ok", "failed"):
        out[f"timed_{outcome}"] = value(
            "coderm_handler_seconds_count", queue=queue, outcome=outcome
        )
    return out


async def test_the_broker_counts_every_delivery_by_what_became_of_it() -> None:
    broker, dead, retry = fake_broker()
    queue = fresh_queue()

    async def ok(_message: ScoreProblem) -> None:
        return None

    async def broken(_message: ScoreProblem) -> None:
        raise RuntimeError("transient")

    async def refused(_message: ScoreProblem) -> None:
        raise PermanentError("never")

    assert (await deliver(broker, queue, ok)).settled == ["ack"]
    assert (await deliver(broker, queue, broken)).settled == ["ack"]  # retry copy confirmed
    assert (await deliver(broker, queue, broken, attempt=MAX_ATTEMPTS)).settled == ["ack"]
    assert (await deliver(broker, queue, refused)).settled == ["ack"]
    assert (await deliver(broker, queue, ok, body=b"not json")).settled == ["ack"]
    assert len(retry.published) == 1
    assert len(dead.published) == 3
    assert counts(queue) == {
        "handled": 1,
        "failed": 3,
        "retried": 1,
        "dead_lettered": 3,  # out of attempts, permanent, invalid
        "timed_ok": 1,
        "timed_failed": 3,  # the invalid body never reached a handler
    }


async def test_a_cancelled_handler_is_requeued_and_not_counted() -> None:
    broker, _, _ = fake_broker()
    queue = fresh_queue()

    async def cancelled(_message: ScoreProblem) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await deliver(broker, queue, cancelled)
    assert set(counts(queue).values()) == {0.0}


# --- run progress -------------------------------------------------------------------------


def samples_of(families: Sequence[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (s.name, tuple(v for k, v in sorted(s.labels.items()) if k != "service")): s.value
        for family in families
        for s in family.samples
    }


def test_run_progress_gauges() -> None:
    busy, fresh = uuid.uuid4(), uuid.uuid4()
    families = progress_families(
        "scorer",
        {busy: 1000.0, fresh: 5000.0},
        [(busy, "scored", 3, 4000.0), (busy, "extracted", 1, None), (fresh, "pending", 2, None)],
        [(busy, 10, 8, 4500.0)],
    )
    got = samples_of(families)
    assert got[("coderm_run_problems", (str(busy), "scored"))] == 3
    assert got[("coderm_run_problems", (str(fresh), "pending"))] == 2
    assert got[("coderm_run_batches", (str(busy), "done"))] == 8
    assert got[("coderm_run_batches", (str(busy), "pending"))] == 2
    assert got[("coderm_run_progress_ratio", (str(busy),))] == 0.75
    assert got[("coderm_run_progress_ratio", (str(fresh),))] == 0.0
    # the last move: a batch done after the last problem scored; a fresh run's creation
    assert got[("coderm_run_last_progress_timestamp_seconds", (str(busy),))] == 4500.0
    assert got[("coderm_run_last_progress_timestamp_seconds", (str(fresh),))] == 5000.0
    assert {s.labels["service"] for f in families for s in f.samples} == {"scorer"}


def test_no_running_run_no_progress_series() -> None:
    assert samples_of(progress_families("scorer", {}, [], [])) == {}


# --- settings -----------------------------------------------------------------------------


def test_each_service_has_its_own_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODERM_METRICS_PORT", raising=False)
    ports = [
        s().metrics_port
        for s in (GeneratorSettings, ExtractorSettings, ScorerSettings, ExecutorSettings)
    ]
    assert ports == [9711, 9712, 9713, 9720]
    assert ServiceSettings().metrics_port == 0  # a process that is no service serves none
    monkeypatch.setenv("CODERM_METRICS_PORT", "0")
    assert ExecutorSettings().metrics_port == 0
    monkeypatch.setenv("CODERM_METRICS_PORT", "9725")
    assert ExecutorSettings().metrics_port == 9725
    monkeypatch.setenv("CODERM_METRICS_PORT", "70000")
    with pytest.raises(ValidationError):
        ScorerSettings()


# --- the endpoint -------------------------------------------------------------------------


def probe(error: Exception | None = None, hang: bool = False) -> Probe:
    async def check() -> None:
        if hang:
            await asyncio.sleep(60)
        if error is not None:
            raise error

    return check


def collector(error: Exception | None = None) -> ScrapeCollector:
    async def collect() -> Sequence[Metric]:
        if error is not None:
            raise error
        family = GaugeMetricFamily("coderm_unit_gauge", "A test gauge.", labels=["service"])
        family.add_metric([SERVICE], 42.0)
        return [family]

    return collect


def own_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("coderm_unit_events", "Test events.", registry=registry).inc(3)
    return registry


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    async with Endpoint(
        SERVICE,
        "127.0.0.1",
        0,
        probes={"broker": probe(), "database": probe()},
        collectors={"good": collector(), "bad": collector(RuntimeError("db down"))},
        registry=own_registry(),
        timeout_s=0.3,
    ) as listening:
        yield listening


async def get(
    endpoint: Endpoint, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoint.bound_port}") as client:
        return await client.request(method, path, headers=headers)


async def test_liveness_answers_while_starting(endpoint: Endpoint) -> None:
    answer = await get(endpoint, "/healthz")
    assert (answer.status_code, answer.text) == (200, "ok\n")


async def test_ready_only_while_serving(endpoint: Endpoint) -> None:
    starting = await get(endpoint, "/readyz")
    assert starting.status_code == 503
    assert starting.json()["checks"] == {"service": "starting", "broker": "ok", "database": "ok"}
    endpoint.serving()
    ready = await get(endpoint, "/readyz")
    assert (ready.status_code, ready.json()["ready"]) == (200, True)
    assert ready.json()["service"] == SERVICE
    endpoint.stopping()
    stopping = await get(endpoint, "/readyz")
    assert (stopping.status_code, stopping.json()["checks"]["service"]) == (503, "stopping")


async def test_not_ready_names_the_dependency_and_why(endpoint: Endpoint) -> None:
    endpoint.serving()
    endpoint.probes = {
        "broker": probe(hang=True),
        "database": probe(ConnectionRefusedError("connect call failed")),
    }
    answer = await get(endpoint, "/readyz")
    assert answer.status_code == 503
    body = json.loads(answer.text)
    assert body["ready"] is False
    assert body["checks"] == {
        "service": "ok",
        "broker": "no answer in 0.3 s",
        "database": "ConnectionRefusedError: connect call failed",
    }


async def test_metrics_render_the_registry_and_the_collectors(endpoint: Endpoint) -> None:
    answer = await get(endpoint, "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert "coderm_unit_events_total 3.0" in text
    assert f'coderm_unit_gauge{{service="{SERVICE}"}} 42.0' in text
    assert f'coderm_collector_up{{collector="good",service="{SERVICE}"}} 1.0' in text
    assert f'coderm_collector_up{{collector="bad",service="{SERVICE}"}} 0.0' in text


async def test_metrics_in_openmetrics_when_asked(endpoint: Endpoint) -> None:
    answer = await get(
        endpoint, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


async def test_other_paths_and_methods(endpoint: Endpoint) -> None:
    assert (await get(endpoint, "/nothing")).status_code == 404
    assert (await get(endpoint, "/metrics", method="POST")).status_code == 405
    head = await get(endpoint, "/healthz", method="HEAD")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "3")


async def test_a_malformed_request_is_dropped_and_the_endpoint_answers_on(
    endpoint: Endpoint,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.bound_port)
    writer.write(b"nonsense\r\n\r\n")
    await writer.drain()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert (await get(endpoint, "/healthz")).status_code == 200


async def test_a_port_in_use_leaves_the_service_running_without_an_endpoint(
    endpoint: Endpoint,
) -> None:
    port = endpoint.bound_port
    assert port is not None
    async with Endpoint(SERVICE, "127.0.0.1", port) as second:
        assert second.bound_port is None
    assert (await get(endpoint, "/healthz")).status_code == 200
