"""Retries wait in the broker's delay queues, not in a consumer: a batch that keeps
failing does not hold the executor, and ends in the dead-letter queue with its attempts.

The executor under test consumes a queue prefix of its own (same database, no other
consumer), so the test decides exactly what it is given and in which order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from collections.abc import Iterator

import aio_pika
import pytest
from pydantic import SecretStr
from rich.console import Console

from services.cli.dead_letters import dead_letters_table, peek_dead_letters
from shared.broker import MAX_ATTEMPTS, RETRY_STEPS, Topology, declare_topology
from shared.messages import ExecuteBatch
from shared.settings import BrokerSettings
from tests.stack import (
    BROKER_URL,
    Services,
    Stack,
    consumer_count,
    dead_letters,
    delete_topology,
    query,
    submit,
    wait_for,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")
RETRY_DELAY_S = "0.2"
"""The first back-off in this test (production: 2 s); 0.2 + 0.4 + 0.8 + 1.6 s in all."""
HOLD = b"holds the first delay queue open"


async def _depth(name: str) -> int:
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


def depth(name: str) -> int:
    """Messages ready in one queue."""
    return asyncio.run(_depth(name))


async def _declare_and_hold(topology: Topology) -> None:
    """Declare the topology and put a message with a long TTL at the head of the first
    delay queue: RabbitMQ expires a message only at the head of its queue, so every
    copy that arrives behind it waits until the test takes it away (a back-off as long
    as the test needs, without depending on how fast the rest runs)."""
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchanges = await declare_topology(channel, topology)
        await exchanges.retry.publish(
            aio_pika.Message(HOLD, expiration=3600),
            routing_key=topology.retry_route("execute", RETRY_STEPS[0]),
        )


async def _release(topology: Topology) -> None:
    """Take the holding message out of the first delay queue."""
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.retry_queue("execute", RETRY_STEPS[0]))
        message = await queue.get(fail=True)
        assert message is not None and message.body == HOLD
        await message.ack()


async def _publish(topology: Topology, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.exchange)
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="execute",
            )


@pytest.fixture
def private(stack: Stack) -> Iterator[Stack]:
    """The session's database with a queue prefix of its own; its topology is deleted
    afterwards."""
    slice_ = dataclasses.replace(stack, queue_prefix=f"{stack.queue_prefix}-retries")
    try:
        yield slice_
    finally:
        asyncio.run(delete_topology(slice_))


def _events(stack: Stack, log_name: str, event: str) -> list[dict[str, object]]:
    lines = (stack.log_dir / f"{log_name}.log").read_text(errors="replace").splitlines()
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def _batches_done(stack: Stack, run_id: uuid.UUID) -> int:
    rows = query(
        stack,
        "SELECT count(*) AS n FROM execution_batches WHERE run_id = $1 AND done_at IS NOT NULL",
        run_id,
    )
    return int(rows[0]["n"])


def _copy_with_corrupt_limits(stack: Stack, run_id: uuid.UUID) -> uuid.UUID:
    """A copy of a run whose stored execution limits are unreadable: its batches load
    (run, problem and code exist) and then the executor's handler raises a validation
    error, every time; not a ``PermanentError``, so the broker retries it."""
    poison = uuid.uuid4()
    query(
        stack,
        """INSERT INTO runs
           SELECT (jsonb_populate_record(r, jsonb_build_object(
               'id', $2::text,
               'name', 'poison',
               'config', jsonb_set(r.config, '{limits}', '"corrupted"'::jsonb)))).*
           FROM runs r WHERE r.id = $1""",
        run_id,
        str(poison),
    )
    return poison


@pytest.mark.usefixtures("imported")
def test_failing_batch_waits_in_the_broker_while_good_batches_run(
    stack: Stack, services: Services, private: Stack
) -> None:
    """One executor with one sandbox and one batch in hand gets a batch that always
    fails, then good batches: the good ones all run while the failing one waits in its
    delay queue (the executor holds nothing for it); a malformed and an unknown batch go
    to the dead-letter queue at once; released, the failing batch is tried
    ``MAX_ATTEMPTS`` times in all and lands in the dead-letter queue with its reason and
    its attempts, which ``coderm dead-letters`` lists."""
    args = (*RUN_ARGS, "--n", "12", "--m", "5", "--problems", "3", "--assert-time-limit", "0.55")
    run_id = uuid.UUID(submit(stack, *args))
    wait_run_finished(stack, services, str(run_id), timeout=300)
    profile = query(stack, "SELECT exec_profile FROM runs WHERE id = $1", run_id)[0]
    executions = "SELECT count(*) AS n FROM executions WHERE profile = $1"
    stored = int(query(stack, executions, profile["exec_profile"])[0]["n"])
    assert stored > 0
    batches = query(
        stack,
        "SELECT problem_id, batch_no, solution_ids FROM execution_batches WHERE run_id = $1 "
        "ORDER BY problem_id, batch_no",
        run_id,
    )
    good = [
        ExecuteBatch(
            run_id=run_id,
            problem_id=b["problem_id"],
            batch_no=b["batch_no"],
            solution_ids=json.loads(b["solution_ids"]),
        )
        for b in batches
    ]
    # The good batches run again for real: their results are deleted, their batches open.
    query(
        stack,
        "DELETE FROM verdicts WHERE profile_id = (SELECT id FROM exec_profiles WHERE name = $1)",
        profile["exec_profile"],
    )
    query(stack, "UPDATE execution_batches SET done_at = NULL WHERE run_id = $1", run_id)
    poison_run = _copy_with_corrupt_limits(stack, run_id)
    poison = good[0].model_copy(update={"run_id": poison_run}).to_body()
    unknown = good[0].model_copy(update={"run_id": uuid.uuid4()}).to_body()
    malformed = b'{"kind": "execute", "run_id": "not-a-uuid"}'

    topology = Topology(private.queue_prefix)
    asyncio.run(_declare_and_hold(topology))
    executor = Services(
        private,
        {
            "CODERM_CONCURRENCY": "1",
            "CODERM_PREFETCH_EXTRA": "0",
            "CODERM_BROKER__RETRY_DELAY_S": RETRY_DELAY_S,
        },
    )
    executor.start("executor-retries", "executor")
    try:
        wait_for(lambda: consumer_count(private, "execute") == 1, 60, "the executor")
        asyncio.run(_publish(topology, [poison, malformed, unknown, *(m.to_body() for m in good)]))
        wait_for(lambda: _batches_done(stack, run_id) == len(good), 300, "the good batches")

        # Every good batch ran while the failing one waited in its delay queue.
        assert int(query(stack, executions, profile["exec_profile"])[0]["n"]) == stored
        assert depth(topology.retry_queue("execute", RETRY_STEPS[0])) == 2
        assert depth(topology.queue("execute")) == 0
        failed = _events(private, "executor-retries", "message.handler_failed")
        assert [f["attempt"] for f in failed] == [1]
        assert dead_letters(private) == {"execute": 2}  # taken before the good batches
        assert executor.exit_codes() == {"executor-retries": None}

        asyncio.run(_release(topology))
        wait_for(lambda: dead_letters(private) == {"execute": 3}, 120, "the failing batch")
        failed = _events(private, "executor-retries", "message.handler_failed")
        assert [f["attempt"] for f in failed] == list(range(1, MAX_ATTEMPTS + 1))
        scheduled = _events(private, "executor-retries", "message.retry_scheduled")
        assert [s["attempt"] for s in scheduled] == list(range(2, MAX_ATTEMPTS + 1))
        assert [s["delay_s"] for s in scheduled] == [0.2, 0.4, 0.8, 1.6]
    finally:
        executor.stop_all()
        query(stack, "DELETE FROM runs WHERE id = $1", poison_run)

    assert all(depth(topology.retry_queue("execute", step)) == 0 for step in RETRY_STEPS)
    settings = BrokerSettings(url=SecretStr(BROKER_URL), queue_prefix=private.queue_prefix)
    letters = {letter.body: letter for letter in asyncio.run(peek_dead_letters(settings, 10))}
    assert set(letters) == {poison, malformed, unknown}
    assert letters[poison].attempts == MAX_ATTEMPTS
    assert letters[poison].reason.startswith("ValidationError")
    assert (letters[malformed].attempts, letters[unknown].attempts) == (1, 1)
    assert letters[malformed].reason.startswith("invalid message")
    assert letters[unknown].reason.startswith("UnknownReferenceError")
    console = Console(record=True, width=400)
    console.print(dead_letters_table([letters[poison]]))
    listing = console.export_text()
    assert "attempts" in listing
    assert re.search(rf"│ execute │ +{MAX_ATTEMPTS} │ ValidationError", listing)


def test_topology_declares_over_the_previous_one(private: Stack) -> None:
    """A system running the previous topology (work and dead-letter queues only, with
    the same arguments) takes the new one: its queues are declared again unchanged and
    the delay queues are added."""

    async def previous_then_current() -> list[str]:
        topology = Topology(private.queue_prefix)
        connection = await aio_pika.connect_robust(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            for kind in ("generate", "extract", "execute", "score"):
                await channel.declare_queue(topology.dead_queue(kind), durable=True)
                await channel.declare_queue(
                    topology.queue(kind),
                    durable=True,
                    arguments={
                        "x-dead-letter-exchange": topology.dead_exchange,
                        "x-dead-letter-routing-key": kind,
                    },
                )
            await declare_topology(channel, topology)
            await declare_topology(channel, topology)
            declared = []
            for name in topology.queues():
                await channel.declare_queue(name, passive=True)
                declared.append(name)
            return declared

    declared = asyncio.run(previous_then_current())
    assert f"{private.queue_prefix}.execute.retry.{MAX_ATTEMPTS - 1}" in declared
