"""The services' metrics and health, scraped by a real Prometheus.

The four services run as processes on a fresh slice of the stack, each with its own
metrics port; deploy/local/prometheus.sh installs Debian's prometheus package if it is
missing and starts a Prometheus that scrapes them every second. A small run goes
through them, with the executor started only once the run's batches wait in their
queue, so the queue-depth and run-progress gauges are seen while they are non-zero.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest

from tests.integration.test_replicas import import_demo
from tests.stack import (
    ROOT,
    Services,
    Stack,
    create_stack,
    delete_topology,
    drop_stack,
    query,
    queue_counts,
    submit,
    wait_for,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
SCRIPT = ROOT / "deploy" / "local" / "prometheus.sh"
SERVICES = ("generator", "extractor", "scorer", "executor")
RUN = (
    *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b-ut"),
    *("--n", "6", "--m", "10", "--problems", "3"),
)
ALERTS = {
    "CodermQueueBackingUp",
    "CodermDeadLetters",
    "CodermExecutorErrorRate",
    "CodermRunStalled",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/local/prometheus.sh; fail with its output when it fails."""
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def start(services: Services, name: str, port: int) -> None:
    """Start one service with its metrics endpoint on ``port``."""
    services.extra_env["CODERM_METRICS_PORT"] = str(port)
    services.start(name)


def consumed(stack: Stack, kind: str) -> bool:
    """Whether a work queue of the slice has a consumer (False until it exists)."""
    try:
        return queue_counts(stack, kind)[1] > 0
    except aio_pika.exceptions.ChannelClosed:
        return False


def endpoint(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, int]]]:
    """A fresh slice with the demo imported, and a metrics port for each service."""
    stack = create_stack(tmp_path_factory.mktemp("prometheus-logs"))
    try:
        import_demo(stack)
        yield stack, {name: free_port() for name in SERVICES}
    finally:
        drop_stack(stack)


@pytest.fixture(scope="module")
def services(metered: tuple[Stack, dict[str, int]]) -> Iterator[Services]:
    """Generator, extractor and scorer running; the test starts the executor."""
    stack, ports = metered
    running = Services(stack, {"CODERM_SOLUTIONS_PER_BATCH": "2", "CODERM_CONCURRENCY": "1"})
    try:
        for name in ("generator", "extractor", "scorer"):
            start(running, name, ports[name])
        wait_for(
            lambda: all(consumed(stack, k) for k in ("generate", "extract", "score")),
            90,
            f"consumers (logs in {stack.log_dir})",
        )
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="module")
def prometheus(
    metered: tuple[Stack, dict[str, int]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus started by deploy/local/prometheus.sh, scraping the services
    every second; its base URL."""
    _, ports = metered
    directory = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    targets = [a for name, p in ports.items() for a in ("--target", f"{name}=127.0.0.1:{p}")]
    where = ("--dir", str(directory))
    try:
        script("start", *where, "--port", str(port), "--scrape-interval", "1s", *targets)
        yield f"http://127.0.0.1:{port}"
    finally:
        script("stop", *where)


def promql(prometheus: str, expr: str) -> dict[str, float]:
    """An instant query's result: each series' labels (as sorted ``k=v`` text) -> value."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1])
        for r in answer.json()["data"]["result"]
    }


def by(label: str, result: dict[str, float]) -> dict[str, float]:
    """A result aggregated ``by (label)``, keyed by that label's value."""
    return {key.removeprefix(f"{label}="): v for key, v in result.items()}


def target_health(prometheus: str) -> dict[str, str]:
    answer = httpx.get(f"{prometheus}/api/v1/targets", timeout=10)
    answer.raise_for_status()
    return {t["labels"]["process"]: t["health"] for t in answer.json()["data"]["activeTargets"]}


def until(what: str, check: Callable[[], tuple[bool, object]], timeout: float = 180) -> None:
    """Poll ``check`` until it says done; fail with ``what`` and what it saw last."""
    last: list[object] = []

    def done() -> bool:
        try:
            ok, seen = check()
        except httpx.HTTPError as error:
            ok, seen = False, repr(error)
        last[:] = [seen]
        return bool(ok)

    try:
        wait_for(done, timeout, what, every=1)
    except TimeoutError as error:
        raise AssertionError(f"{error}; last seen: {last}") from error


def handled(prometheus: str) -> dict[str, float]:
    """Messages handled by queue, summed over the instances."""
    return by("queue", promql(prometheus, "sum by (queue) (coderm_messages_handled_total)"))


@pytest.mark.timeout(1200)
def test_prometheus_scrapes_every_service(
    metered: tuple[Stack, dict[str, int]], services: Services, prometheus: str
) -> None:
    stack, ports = metered
    run_id = submit(stack, *RUN)
    of_run = f'run_id="{run_id}"'

    def batches_wait() -> tuple[bool, object]:
        depth = by("queue", promql(prometheus, "max by (queue) (coderm_queue_messages)"))
        pending = promql(prometheus, f'max(coderm_run_batches{{{of_run},state="pending"}})')
        return depth.get("execute", 0) > 0 and pending.get("", 0) > 0, (depth, pending)

    # Without an executor, the run's batches wait: their depth and the run's progress.
    until("the execute queue's depth and the run's pending batches", batches_wait)
    progress = promql(prometheus, f"max(coderm_run_progress_ratio{{{of_run}}})")
    assert 0 <= progress[""] < 1
    assert promql(prometheus, f"max(coderm_run_last_progress_timestamp_seconds{{{of_run}}})")
    consumers = by("queue", promql(prometheus, "max by (queue) (coderm_queue_consumers)"))
    assert consumers == {
        "generate": 1,
        "extract": 1,
        "score": 1,
        "execute": 0,
        "expected": 0,
        "pairs": 0,
    }

    start(services, "executor", ports["executor"])
    wait_run_finished(stack, services, run_id, timeout=600)

    def all_up() -> tuple[bool, object]:
        health = target_health(prometheus)
        return health == dict.fromkeys(SERVICES, "up"), health

    def every_queue_handled() -> tuple[bool, object]:
        counts = handled(prometheus)
        return all(
            counts.get(q, 0) > 0 for q in ("generate", "extract", "execute", "score")
        ), counts

    executed = query(
        stack,
        "SELECT count(*) AS n FROM executions e JOIN runs r ON e.profile = r.exec_profile "
        "WHERE r.id = $1",
        uuid.UUID(run_id),
    )[0]["n"]
    assert executed > 0

    def pairs_counted() -> tuple[bool, object]:
        pairs = promql(prometheus, "sum(coderm_pairs_executed_total)")
        return pairs == {"": executed}, pairs

    def run_gone() -> tuple[bool, object]:
        series = promql(prometheus, f"coderm_run_progress_ratio{{{of_run}}}")
        return not series, series

    until("every target up", all_up)
    until("messages handled from every queue of the run", every_queue_handled)
    until(f"the pairs executed, as many as the {executed} executions stored", pairs_counted)
    until("the finished run's progress series gone", run_gone)
    assert promql(prometheus, "sum(coderm_sandbox_starts_total)")[""] > 0
    assert promql(prometheus, 'sum(coderm_handler_seconds_count{queue="execute"})')[""] > 0
    # the executor's other queue is counted from zero on, before its first message
    assert handled(prometheus)["expected"] == 0
    collectors = promql(prometheus, "coderm_collector_up")
    assert len(collectors) == 2 * len(SERVICES)
    assert set(collectors.values()) == {1.0}, collectors

    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} == ALERTS

    for name, port in ports.items():
        assert (name, endpoint(port, "/healthz").status_code) == (name, 200)
        ready = endpoint(port, "/readyz")
        assert ready.status_code == 200, (name, ready.text)
        assert ready.json() == {
            "service": name,
            "ready": True,
            "checks": {"service": "ok", "broker": "ok", "database": "ok"},
        }


def test_not_ready_while_its_database_is_unreachable(
    metered: tuple[Stack, dict[str, int]], tmp_path: Path
) -> None:
    """A scorer whose database URL names a port nobody listens on: alive, not ready,
    and saying why. It has a queue prefix of its own, so it takes no one's messages."""
    stack, _ = metered
    isolated = Stack(stack.database, f"coderm-test-{uuid.uuid4().hex[:10]}", tmp_path)
    port = free_port()
    scorer = Services(
        isolated,
        {
            "CODERM_DATABASE__URL": f"postgresql+asyncpg://coderm:coderm@127.0.0.1:{free_port()}/x",
            "CODERM_METRICS_PORT": str(port),
        },
    )
    scorer.start("scorer")
    try:
        answers: list[httpx.Response] = []

        def answered() -> bool:
            try:
                answers[:] = [endpoint(port, "/readyz")]
            except httpx.HTTPError:
                return False
            return bool(answers[0].json()["checks"]["service"] == "ok")

        wait_for(answered, 90, f"the scorer's /readyz (log in {tmp_path})")
        ready = answers[0]
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["broker"] == "ok"
        assert checks["database"] != "ok"
        assert "refused" in checks["database"].lower() or "connect" in checks["database"].lower()
        assert endpoint(port, "/healthz").status_code == 200
        assert scorer.terminate("scorer") == 0
    finally:
        if scorer.processes:
            scorer.stop_all()
        asyncio.run(delete_topology(isolated))


def test_alert_rules() -> None:
    """promtool check rules and promtool test rules deploy/prometheus/alerts_test.yml,
    through the script that installs Prometheus."""
    done = script("test-rules")
    assert "SUCCESS: 4 rules found" in done.stdout
    assert done.stdout.rstrip().endswith("SUCCESS"), done.stdout
