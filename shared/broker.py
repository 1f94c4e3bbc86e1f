"""RabbitMQ topology and the consume/publish helpers every service uses.

One direct exchange routes each message kind to its durable work queue. Every work
queue has a dead-letter queue (``<queue>.dead``): a message that fails validation, or
whose handler keeps failing (or fails with a ``PermanentError``), is copied there with
the reason and the number of attempts in its headers and the original is acked, so a
poison message never blocks a queue and nothing is lost.
Messages are persistent; a consumer acks only after its handler (and so its database
transaction) has finished.

Retries wait in the broker, not in a consumer. When a handler fails (with anything but
a ``PermanentError``) on attempt ``n < MAX_ATTEMPTS``, a copy of the message carrying
``n + 1`` in its ``x-coderm-attempt`` header is published, with publisher confirms, to
the delay queue ``<queue>.retry.<n>`` with a per-message TTL of ``retry_delay_s(n)``
(exponential, bounded); only then is the original acked, so a crash in between
duplicates the message at worst (handlers are idempotent) and never loses it. The delay
queue has no consumer: when the TTL runs out, RabbitMQ dead-letters the copy through
the work exchange back to the work queue. The consumer's slot is free for other
messages the whole time, where sleeping before the re-publish held the unacked delivery
(and, with a prefetch of one, the whole consumer) for every second of the back-off.

Why one delay queue per back-off step rather than a single ``<queue>.retry``: RabbitMQ
expires a message only when it reaches the head of its queue, so in one shared queue a
copy waiting 16 s would hold back a copy behind it that should wait 2 s. Within one
step every copy has the same delay, so arrival order is expiry order and none waits
longer than its step asks (after a change of the delay settings, at most the old
delay). Why a per-message TTL rather than the queue argument ``x-message-ttl``: queue
arguments are fixed when a queue is first declared, and RabbitMQ refuses a later
declaration with other arguments; the delays are settings (tests shorten them), so the
delay queues' arguments name only the route back, which never changes.

RabbitMQ moves an expired copy back without a publisher confirm of its own; the route
it takes (retry queue to work exchange to work queue) is declared with the topology, so
the copy has somewhere to go as long as the work queue is not deleted under it.

The delay queues and the exchange that feeds them (``<prefix>.retry``) are new objects;
the arguments of the work and dead-letter queues that running systems have already
declared are unchanged, so deploying this needs no migration of queues.

Every delivery is counted per queue (``shared.observability.metrics``): handled (the
handler returned), failed (it raised), retried and dead-lettered (the copy confirmed),
with the handler's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pydantic import ValidationError

from shared.errors import PermanentError
from shared.messages import (
    BaseMessage,
    ComputeExpected,
    ExecuteBatch,
    ExecutePairs,
    ExtractRequest,
    GenerateRequest,
    ScoreProblem,
)
from shared.observability import metrics
from shared.settings import BrokerSettings

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseMessage)
Handler = Callable[[M], Awaitable[None]]
DeadLetterHook = Callable[[str, bytes, str], Awaitable[None]]

WORK_KINDS: dict[str, type[BaseMessage]] = {
    "generate": GenerateRequest,
    "extract": ExtractRequest,
    "execute": ExecuteBatch,
    "score": ScoreProblem,
    "expected": ComputeExpected,
    "pairs": ExecutePairs,
}
MAX_ATTEMPTS = 5
"""How many times a handler is run on one message before it is dead-lettered."""
RETRY_STEPS = range(1, MAX_ATTEMPTS)
"""The back-off steps: the attempts after which a failed message is retried, one delay
queue each."""
ATTEMPT_HEADER = "x-coderm-attempt"
REASON_HEADER = "x-coderm-reason"
BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
"""Prefixes of the headers RabbitMQ adds when it dead-letters a message (here: a retry
copy coming back from its delay queue); they are not carried into new copies."""


def retry_delay_s(attempt: int, first_s: float, max_s: float) -> float:
    """The back-off after failed attempt ``attempt`` (1-based): ``first_s``, doubled for
    every earlier failed attempt, and never more than ``max_s``."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    return min(first_s * 2.0 ** (attempt - 1), max_s)


def attempt_of(headers: Mapping[str, Any]) -> int:
    """The attempt a delivery is (its ``x-coderm-attempt`` header; 1 when absent or
    unreadable)."""
    try:
        return max(1, int(str(headers.get(ATTEMPT_HEADER, 1))))
    except ValueError:
        return 1


def copy_headers(headers: Mapping[str, Any], **ours: Any) -> dict[str, Any]:
    """The headers a re-published copy carries: the delivery's own, without RabbitMQ's
    dead-lettering record, with ``ours`` set."""
    kept = {k: v for k, v in headers.items() if not k.startswith(BROKER_DEATH_HEADERS)}
    return {**kept, **ours}


class UnroutedError(Exception):
    """The broker did not take a copy into any queue (it returned the message)."""


@dataclass(frozen=True)
class Topology:
    """Names of the exchanges and queues, derived from one prefix."""

    prefix: str

    @property
    def exchange(self) -> str:
        """The direct exchange all work messages are published to."""
        return self.prefix

    @property
    def dead_exchange(self) -> str:
        """The exchange that routes dead letters to their queue's ``.dead`` twin."""
        return f"{self.prefix}.dlx"

    @property
    def retry_exchange(self) -> str:
        """The exchange that routes retry copies to their delay queue."""
        return f"{self.prefix}.retry"

    def queue(self, kind: str) -> str:
        """The work queue of a message kind."""
        return f"{self.prefix}.{kind}"

    def dead_queue(self, kind: str) -> str:
        """The dead-letter queue of a message kind."""
        return f"{self.prefix}.{kind}.dead"

    def retry_queue(self, kind: str, step: int) -> str:
        """The delay queue where a message of ``kind`` waits after failed attempt ``step``."""
        return f"{self.prefix}.{kind}.retry.{step}"

    @staticmethod
    def retry_route(kind: str, step: int) -> str:
        """The routing key of that delay queue on the retry exchange."""
        return f"{kind}.{step}"

    def queues(self) -> list[str]:
        """Every queue of the topology (work, dead-letter and delay queues)."""
        return [
            name
            for kind in WORK_KINDS
            for name in (
                self.queue(kind),
                self.dead_queue(kind),
                *(self.retry_queue(kind, step) for step in RETRY_STEPS),
            )
        ]

    def exchanges(self) -> list[str]:
        """Every exchange of the topology."""
        return [self.exchange, self.dead_exchange, self.retry_exchange]


class Exchanges(NamedTuple):
    """The declared exchanges: work messages, dead letters and retry copies."""

    work: AbstractExchange
    dead: AbstractExchange
    retry: AbstractExchange


def kind_of(message: BaseMessage) -> str:
    """The routing key of a message (its ``kind`` field)."""
    kind = message.model_dump(include={"kind"})["kind"]
    assert isinstance(kind, str)
    return kind


@dataclass
class Broker:
    """A connection, one publishing channel (with publisher confirms) and the declared
    topology; ``retry_delay_s``/``retry_max_delay_s`` set the back-off of failed
    handlers (see :func:`retry_delay_s`)."""

    connection: AbstractRobustConnection
    channel: AbstractChannel
    exchange: AbstractExchange
    dead_exchange: AbstractExchange
    retry_exchange: AbstractExchange
    topology: Topology
    prefetch: int
    retry_delay_s: float = 2.0
    retry_max_delay_s: float = 30.0
    on_dead_letter: DeadLetterHook | None = None
    _consumers: list[tuple[AbstractQueue, str]] = field(default_factory=list)
    _in_flight: set[asyncio.Task[Any]] = field(default_factory=set)

    async def publish(self, message: BaseMessage) -> None:
        """Publish a message persistently to its work queue."""
        await self.exchange.publish(
            aio_pika.Message(
                message.to_body(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            ),
            routing_key=kind_of(message),
            mandatory=True,
        )

    async def reply(self, reply_to: str, message: BaseMessage) -> None:
        """Send a reply straight to a client's reply queue (the default exchange; a
        reply to a queue that is gone, its client having died, is dropped)."""
        await self.channel.default_exchange.publish(
            aio_pika.Message(message.to_body(), content_type="application/json"),
            routing_key=reply_to,
        )

    async def publish_many(self, messages: Sequence[BaseMessage]) -> None:
        """Publish several messages, in order."""
        for message in messages:
            await self.publish(message)

    async def dead_letter(
        self, kind: str, body: bytes, reason: str, headers: Mapping[str, Any], attempt: int = 1
    ) -> None:
        """Copy a message to its kind's dead-letter queue with the reason and the number
        of attempts made in its headers; returns once the broker has confirmed it."""
        await _publish_confirmed(
            self.dead_exchange,
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=copy_headers(
                    headers, **{ATTEMPT_HEADER: attempt, REASON_HEADER: reason[:4000]}
                ),
            ),
            routing_key=kind,
        )
        metrics.dead_lettered(kind)
        log.warning("message.dead_lettered", kind=kind, attempts=attempt, reason=reason[:500])
        if self.on_dead_letter is not None:
            try:
                await self.on_dead_letter(kind, body, reason)
            except Exception:  # the message is safe in its queue; the hook is best effort
                log.exception("message.dead_letter_hook_failed", kind=kind)

    async def consume(self, kind: str, model: type[M], handler: Handler[M]) -> None:
        """Start consuming one work queue with a typed handler.

        Invalid bodies are dead-lettered at once, and so are messages whose handler
        raises a ``PermanentError``; any other handler exception sends the message to
        its delay queue (attempt count + 1) and, after ``MAX_ATTEMPTS`` attempts, to the
        dead-letter queue. The message is acked only after the handler returns or its
        copy is confirmed by the broker.
        """
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.get_queue(self.topology.queue(kind), ensure=True)

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            try:
                await self._handle(kind, model, handler, incoming)
            finally:
                self._in_flight.discard(task)

        metrics.consuming(kind)
        tag = await queue.consume(on_message)
        self._consumers.append((queue, tag))

    async def _handle(
        self, kind: str, model: type[M], handler: Handler[M], incoming: AbstractIncomingMessage
    ) -> None:
        headers = dict(incoming.headers or {})
        attempt = attempt_of(headers)
        try:
            message = model.model_validate_json(incoming.body)
        except ValidationError as error:
            reason = f"invalid message: {error}"
            copied = self.dead_letter(kind, incoming.body, reason, headers, attempt)
            await self._settle(incoming, copied)
            return
        started = time.perf_counter()
        try:
            await handler(message)
        except asyncio.CancelledError:
            await incoming.nack(requeue=True)
            raise
        except PermanentError as error:
            metrics.handler_raised(kind, time.perf_counter() - started)
            reason = f"{type(error).__name__}: {error}"
            await self._settle(
                incoming, self.dead_letter(kind, incoming.body, reason, headers, attempt)
            )
            return
        except Exception as error:  # a handler failure must not kill the consumer
            metrics.handler_raised(kind, time.perf_counter() - started)
            reason = f"{type(error).__name__}: {error}"
            log.exception("message.handler_failed", kind=kind, attempt=attempt)
            if attempt >= MAX_ATTEMPTS:
                copied = self.dead_letter(kind, incoming.body, reason, headers, attempt)
            else:
                copied = self._schedule_retry(kind, incoming, headers, attempt, reason)
            await self._settle(incoming, copied)
            return
        metrics.handler_returned(kind, time.perf_counter() - started)
        await incoming.ack()

    async def _schedule_retry(
        self,
        kind: str,
        incoming: AbstractIncomingMessage,
        headers: Mapping[str, Any],
        attempt: int,
        reason: str,
    ) -> None:
        """Publish the copy for attempt ``attempt + 1`` to the delay queue of step
        ``attempt``; returns once the broker has confirmed it."""
        delay = retry_delay_s(attempt, self.retry_delay_s, self.retry_max_delay_s)
        await _publish_confirmed(
            self.retry_exchange,
            aio_pika.Message(
                incoming.body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=incoming.content_type or "application/json",
                headers=copy_headers(
                    headers, **{ATTEMPT_HEADER: attempt + 1, REASON_HEADER: reason[:4000]}
                ),
                expiration=max(delay, 0.001),
            ),
            routing_key=self.topology.retry_route(kind, attempt),
        )
        metrics.retried(kind)
        log.info("message.retry_scheduled", kind=kind, attempt=attempt + 1, delay_s=delay)

    @staticmethod
    async def _settle(incoming: AbstractIncomingMessage, copied: Awaitable[None]) -> None:
        """Ack ``incoming`` once its copy (retry or dead letter) is confirmed; if the copy
        could not be published, requeue the original instead, so it is never lost."""
        try:
            await copied
        except Exception:
            log.exception("message.copy_failed", routing_key=incoming.routing_key)
            await incoming.nack(requeue=True)
            return
        await incoming.ack()

    async def stop_consuming(self, grace_s: float = 30.0, cancel_wait_s: float = 10.0) -> None:
        """Cancel every consumer, then wait (bounded) for the handlers in hand to finish.

        Handlers still running after ``grace_s`` are cancelled: their messages are
        requeued (nacked), and what they awaited is interrupted (a generation is
        aborted in its engine), so resources can be closed right after.
        """
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        self._consumers.clear()
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
        if pending:
            log.warning("consumer.cancelling_unfinished", handlers=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=cancel_wait_s)


async def _publish_confirmed(
    exchange: AbstractExchange, message: aio_pika.Message, routing_key: str
) -> None:
    """Publish on a confirming channel; raise unless the broker took the message into a
    queue (a nack raises in aio-pika; an unroutable message comes back instead)."""
    result = await exchange.publish(message, routing_key=routing_key, mandatory=True)
    if not isinstance(result, aiormq.spec.Basic.Ack):
        raise UnroutedError(f"{exchange.name!r} did not route {routing_key!r}: {result!r}")


async def declare_topology(channel: AbstractChannel, topology: Topology) -> Exchanges:
    """Declare the exchanges, the durable work queues, their dead-letter queues and
    their delay queues (idempotent: the arguments of every queue never change)."""
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        topology.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    retry_exchange = await channel.declare_exchange(
        topology.retry_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    for kind in WORK_KINDS:
        dead = await channel.declare_queue(topology.dead_queue(kind), durable=True)
        await dead.bind(dead_exchange, routing_key=kind)
        queue = await channel.declare_queue(
            topology.queue(kind),
            durable=True,
            arguments={
                "x-dead-letter-exchange": topology.dead_exchange,
                "x-dead-letter-routing-key": kind,
            },
        )
        await queue.bind(exchange, routing_key=kind)
        for step in RETRY_STEPS:
            delay = await channel.declare_queue(
                topology.retry_queue(kind, step),
                durable=True,
                arguments={
                    "x-dead-letter-exchange": topology.exchange,
                    "x-dead-letter-routing-key": kind,
                },
            )
            await delay.bind(retry_exchange, routing_key=topology.retry_route(kind, step))
    return Exchanges(exchange, dead_exchange, retry_exchange)


@contextlib.asynccontextmanager
async def connect_broker(settings: BrokerSettings) -> AsyncIterator[Broker]:
    """Connect, declare the topology and yield a ``Broker``; close on exit."""
    connection = await aio_pika.connect_robust(settings.url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
        channel.return_callbacks.add(_log_returned)
        topology = Topology(settings.queue_prefix)
        exchanges = await declare_topology(channel, topology)
        yield Broker(
            connection,
            channel,
            exchanges.work,
            exchanges.dead,
            exchanges.retry,
            topology,
            settings.prefetch,
            retry_delay_s=settings.retry_delay_s,
            retry_max_delay_s=settings.retry_max_delay_s,
        )
    finally:
        await connection.close()


def _log_returned(_channel: Any, message: Any) -> None:
    log.error("message.unroutable", routing_key=getattr(message, "routing_key", None))
