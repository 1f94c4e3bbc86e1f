"""Test harness for the real stack: a fresh database, fresh queue names, real services.

The PostgreSQL, RabbitMQ and Docker engine are the ones ``deploy/local/up.sh`` starts;
each test session gets its own database (migrated with ``alembic upgrade head``) and
its own queue prefix, and starts the four services as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg

from shared.broker import REASON_HEADER, WORK_KINDS, Topology, kind_of
from shared.messages import BaseMessage

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get(
    "CODERM_TEST_ADMIN_DSN", "postgresql://coderm:coderm@127.0.0.1:5432/coderm"
)
BROKER_URL = os.environ.get("CODERM_TEST_BROKER_URL", "amqp://coderm:coderm@127.0.0.1:5672/coderm")
SERVICES = ("generator", "extractor", "executor", "scorer")


@dataclass
class Stack:
    """Connection settings of one test session's isolated slice of the stack."""

    database: str
    queue_prefix: str
    log_dir: Path
    admin_dsn: str = ADMIN_DSN
    """The server's admin DSN (a private server's for the fault tests)."""
    broker_url: str = BROKER_URL

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the session's database."""
        base = self.admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{self.database}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a service or CLI process bound to this slice."""
        return {
            **os.environ,
            "CODERM_DATABASE__URL": self.database_url,
            "CODERM_BROKER__URL": self.broker_url,
            "CODERM_BROKER__QUEUE_PREFIX": self.queue_prefix,
            "CODERM_LOGGING__FORMAT": "json",
            # no metrics endpoint unless a test asks for one: the services of a running
            # `make up` keep their ports
            "CODERM_METRICS_PORT": "0",
            **extra,
        }


async def _admin(sql: str, dsn: str = ADMIN_DSN) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_stack(log_dir: Path, admin_dsn: str = ADMIN_DSN, broker_url: str = BROKER_URL) -> Stack:
    """Create and migrate a fresh database; pick fresh queue names (on the shared
    servers unless ``admin_dsn`` and ``broker_url`` name others)."""
    suffix = uuid.uuid4().hex[:10]
    stack = Stack(f"coderm_test_{suffix}", f"coderm-test-{suffix}", log_dir, admin_dsn, broker_url)
    asyncio.run(_admin(f'CREATE DATABASE "{stack.database}"', admin_dsn))
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=stack.env(),
        check=True,
        capture_output=True,
    )
    return stack


def drop_stack(stack: Stack) -> None:
    """Drop the session's database, queues and exchanges."""
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)', stack.admin_dsn))
    asyncio.run(delete_topology(stack))


async def delete_topology(stack: Stack) -> None:
    """Delete the queues and exchanges of ``stack``'s queue prefix."""
    topology = Topology(stack.queue_prefix)
    connection = await aio_pika.connect_robust(stack.broker_url)
    async with connection:
        channel = await connection.channel()
        for queue in topology.queues():
            await channel.queue_delete(queue)
        for exchange in topology.exchanges():
            await channel.exchange_delete(exchange)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a service's whole process group (it leads its own session) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class Services:
    """The four services as real processes, which a test may kill and restart."""

    stack: Stack
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, module: str | None = None) -> None:
        """Start (or restart) one service; ``name`` may be a replica (``executor-2``) of
        ``module``, with its own log ``<name>.log`` and ``CODERM_INSTANCE=<name>``."""
        log = (self.stack.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{module or name}"],
            cwd=ROOT,
            env=self.stack.env(**self.extra_env, CODERM_INSTANCE=name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self, name: str) -> None:
        """SIGKILL one service with every process it started (e.g. vLLM's engine core,
        which would outlive it) and reap it."""
        process = self.processes.pop(name)
        _kill_group(process)

    def terminate(self, name: str, timeout: float = 60) -> int:
        """SIGTERM one service and return its exit code."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def stop_all(self) -> None:
        """SIGTERM every service; SIGKILL what has not exited after 30 s."""
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_group(process)
        self.processes.clear()

    def exit_codes(self) -> dict[str, int | None]:
        """Which services have exited (None while running)."""
        return {name: p.poll() for name, p in self.processes.items()}


def run_services(stack: Stack, executors: int = 1, **extra_env: str) -> Iterator[Services]:
    """Start all four services for the duration of a fixture; ``executors`` > 1 adds
    executor replicas ``executor-2``, ``executor-3``, ..."""
    services = Services(stack, dict(extra_env))
    for name in SERVICES:
        services.start(name)
    for replica in range(2, executors + 1):
        services.start(f"executor-{replica}", "executor")
    wait_for(
        lambda: consumers_ready(stack) and consumer_count(stack, "execute") >= executors,
        60,
        f"service consumers (logs in {stack.log_dir})",
    )
    try:
        yield services
    finally:
        services.stop_all()


def cli(
    stack: Stack, *args: str, timeout: float = 600, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """Run the real ``coderm`` command against the session's slice, its terminal
    ``columns`` wide."""
    return subprocess.run(
        [sys.executable, "-c", "from services.cli.app import main; main()", *args],
        cwd=ROOT,
        env=stack.env(COLUMNS=str(columns)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def query(stack: Stack, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run one SQL query against the session's database (for assertions)."""

    async def run() -> list[asyncpg.Record]:
        dsn = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def run_state(stack: Stack, run_id: str) -> str:
    """The state column of a run."""
    rows = query(stack, "SELECT state FROM runs WHERE id = $1", uuid.UUID(run_id))
    return str(rows[0]["state"]) if rows else "missing"


def wait_run_finished(stack: Stack, services: Services, run_id: str, timeout: float) -> None:
    """Wait until the run is finished; fail early if a service died."""

    def finished() -> bool:
        dead = {name: code for name, code in services.exit_codes().items() if code is not None}
        if dead:
            raise RuntimeError(f"services exited: {dead}; logs in {stack.log_dir}")
        letters = dead_letters(stack)
        if letters:
            raise RuntimeError(f"dead-lettered messages {letters}; logs in {stack.log_dir}")
        return run_state(stack, run_id) == "finished"

    wait_for(finished, timeout, f"run {run_id} to finish (logs in {stack.log_dir})")


def submit(stack: Stack, *args: str) -> str:
    """``coderm run ... --detach``; return the run id it printed."""
    result = cli(stack, "run", *args, "--detach")
    assert result.returncode == 0, result.stdout + result.stderr
    for word in result.stdout.split():
        try:
            return str(uuid.UUID(word))
        except ValueError:
            continue
    raise AssertionError(f"no run id in output: {result.stdout}")


def metrics(stack: Stack, run_id: str) -> dict[str, float]:
    """The run's metrics by name."""
    rows = query(stack, "SELECT name, value FROM run_metrics WHERE run_id = $1", uuid.UUID(run_id))
    return {str(r["name"]): float(r["value"]) for r in rows}


def dead_letters(stack: Stack) -> dict[str, int]:
    """Messages waiting in the session's dead-letter queues, by queue."""

    async def depths() -> dict[str, int]:
        topology = Topology(stack.queue_prefix)
        connection = await aio_pika.connect_robust(stack.broker_url)
        async with connection:
            channel = await connection.channel()
            out = {}
            for kind in WORK_KINDS:
                queue = await channel.declare_queue(topology.dead_queue(kind), passive=True)
                count = int(queue.declaration_result.message_count or 0)
                if count:
                    out[kind] = count
            return out

    return asyncio.run(depths())


def consumers_ready(stack: Stack) -> bool:
    """Whether every work queue of the session has a consumer."""

    async def ready() -> bool:
        topology = Topology(stack.queue_prefix)
        connection = await aio_pika.connect_robust(stack.broker_url)
        async with connection:
            for kind in WORK_KINDS:
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(topology.queue(kind), passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    return False
                if not queue.declaration_result.consumer_count:
                    return False
        return True

    return asyncio.run(ready())


def queue_counts(stack: Stack, kind: str) -> tuple[int, int]:
    """``(messages ready, consumers)`` of one work queue of the session."""

    async def counts() -> tuple[int, int]:
        connection = await aio_pika.connect_robust(stack.broker_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                Topology(stack.queue_prefix).queue(kind), passive=True
            )
            result = queue.declaration_result
            return int(result.message_count or 0), int(result.consumer_count or 0)

    return asyncio.run(counts())


def consumer_count(stack: Stack, kind: str) -> int:
    """How many consumers one work queue of the session has."""
    return queue_counts(stack, kind)[1]


def queue_depth(stack: Stack, kind: str) -> int:
    """How many messages wait in one work queue of the session."""
    return queue_counts(stack, kind)[0]


async def publish_raw(stack: Stack, kind: str, body: bytes) -> None:
    """Publish one body, as it is, to a work queue of the session."""
    connection = await aio_pika.connect_robust(stack.broker_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Topology(stack.queue_prefix).exchange)
        await exchange.publish(aio_pika.Message(body), routing_key=kind)


async def publish(stack: Stack, *messages: BaseMessage) -> None:
    """Publish messages to their work queues of the session."""
    for message in messages:
        await publish_raw(stack, kind_of(message), message.to_body())


async def take_dead(
    stack: Stack, kind: str, count: int | None = None
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take messages out of a dead-letter queue of the session (acked): ``count`` of
    them, waiting for them to arrive, or with ``None`` every one there is now."""
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect_robust(stack.broker_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(Topology(stack.queue_prefix).dead_queue(kind))
        while count is None or len(taken) < count:
            message = await queue.get(fail=False)
            if message is None:
                if count is None:
                    break
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            taken.append(message)
    return taken


def dead_reason(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The reason a dead-lettered message carries."""
    return str((message.headers or {}).get(REASON_HEADER))
