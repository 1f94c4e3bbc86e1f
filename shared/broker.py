"""RabbitMQ topology and the consume/publish helpers every service uses.

One direct exchange routes each message kind to its durable work queue. Every work
queue has a dead-letter queue (``<queue>.dead``): a message that fails validation, or
whose handler keeps failing (or fails with a ``PermanentError``), is copied there with
the reason in its headers and the original is acked, so a poison message never blocks a
queue and nothing is lost.
Messages are persistent; a consumer acks only after its handler (and so its database
transaction) has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aio_pika
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
from shared.messages import ExecuteBatch, ExtractRequest, GenerateRequest, Message, ScoreProblem
from shared.settings import BrokerSettings

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None]]
DeadLetterHook = Callable[[str, bytes, str], Awaitable[None]]

WORK_KINDS: dict[str, type[Message]] = {
    "generate": GenerateRequest,
    "extract": ExtractRequest,
    "execute": ExecuteBatch,
    "score": ScoreProblem,
}
MAX_ATTEMPTS = 5
ATTEMPT_HEADER = "x-coderm-attempt"
REASON_HEADER = "x-coderm-reason"


@dataclass(frozen=True)
class Topology:
    """Names of the exchange and queues, derived from one prefix."""

    prefix: str

    @property
    def exchange(self) -> str:
        """The direct exchange all work messages are published to."""
        return self.prefix

    @property
    def dead_exchange(self) -> str:
        """The exchange that routes dead letters to their queue's ``.dead`` twin."""
        return f"{self.prefix}.dlx"

    def queue(self, kind: str) -> str:
        """The work queue of a message kind."""
        return f"{self.prefix}.{kind}"

    def dead_queue(self, kind: str) -> str:
        """The dead-letter queue of a message kind."""
        return f"{self.prefix}.{kind}.dead"


def kind_of(message: Message) -> str:
    """The routing key of a message (its ``kind`` field)."""
    kind = message.model_dump(include={"kind"})["kind"]
    assert isinstance(kind, str)
    return kind


@dataclass
class Broker:
    """A connection, one publishing channel and the declared topology."""

    connection: AbstractRobustConnection
    channel: AbstractChannel
    exchange: AbstractExchange
    dead_exchange: AbstractExchange
    topology: Topology
    prefetch: int
    on_dead_letter: DeadLetterHook | None = None
    _consumers: list[tuple[AbstractQueue, str]] = field(default_factory=list)
    _in_flight: set[asyncio.Task[Any]] = field(default_factory=set)

    async def publish(self, message: Message) -> None:
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

    async def publish_many(self, messages: list[Message]) -> None:
        """Publish several messages, in order."""
        for message in messages:
            await self.publish(message)

    async def dead_letter(
        self, kind: str, body: bytes, reason: str, headers: dict[str, Any]
    ) -> None:
        """Copy a message to its kind's dead-letter queue with the reason in its headers."""
        await self.dead_exchange.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={**headers, REASON_HEADER: reason[:4000]},
            ),
            routing_key=kind,
        )
        log.warning("message.dead_lettered", kind=kind, reason=reason[:500])
        if self.on_dead_letter is not None:
            try:
                await self.on_dead_letter(kind, body, reason)
            except Exception:  # the message is safe in its queue; the hook is best effort
                log.exception("message.dead_letter_hook_failed", kind=kind)

    async def consume(self, kind: str, model: type[M], handler: Handler[M]) -> None:
        """Start consuming one work queue with a typed handler.

        Invalid bodies are dead-lettered at once; a handler exception is retried up to
        ``MAX_ATTEMPTS`` times (re-published with an attempt counter) and then
        dead-lettered. The message is acked only after the handler returns.
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

        tag = await queue.consume(on_message)
        self._consumers.append((queue, tag))

    async def _handle(
        self, kind: str, model: type[M], handler: Handler[M], incoming: AbstractIncomingMessage
    ) -> None:
        headers = dict(incoming.headers or {})
        try:
            message = model.model_validate_json(incoming.body)
        except ValidationError as error:
            await self.dead_letter(kind, incoming.body, f"invalid message: {error}", headers)
            await incoming.ack()
            return
        try:
            await handler(message)
        except asyncio.CancelledError:
            await incoming.nack(requeue=True)
            raise
        except PermanentError as error:
            await self.dead_letter(kind, incoming.body, f"{type(error).__name__}: {error}", headers)
            await incoming.ack()
            return
        except Exception as error:  # a handler failure must not kill the consumer
            await self._retry_or_dead_letter(kind, incoming, headers, error)
            return
        await incoming.ack()

    async def _retry_or_dead_letter(
        self,
        kind: str,
        incoming: AbstractIncomingMessage,
        headers: dict[str, Any],
        error: Exception,
    ) -> None:
        attempt = int(str(headers.get(ATTEMPT_HEADER, 1)))
        reason = f"{type(error).__name__}: {error}"
        log.exception("message.handler_failed", kind=kind, attempt=attempt)
        if attempt >= MAX_ATTEMPTS:
            await self.dead_letter(kind, incoming.body, reason, headers)
        else:
            await asyncio.sleep(min(2.0**attempt, 30.0))
            await self.exchange.publish(
                aio_pika.Message(
                    incoming.body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                    headers={**headers, ATTEMPT_HEADER: attempt + 1, REASON_HEADER: reason[:4000]},
                ),
                routing_key=kind,
            )
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


async def declare_topology(
    channel: AbstractChannel, topology: Topology
) -> tuple[AbstractExchange, AbstractExchange]:
    """Declare the exchanges, the durable work queues and their dead-letter queues."""
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        topology.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
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
    return exchange, dead_exchange


@contextlib.asynccontextmanager
async def connect_broker(settings: BrokerSettings) -> AsyncIterator[Broker]:
    """Connect, declare the topology and yield a ``Broker``; close on exit."""
    connection = await aio_pika.connect_robust(settings.url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
        channel.return_callbacks.add(_log_returned)
        topology = Topology(settings.queue_prefix)
        exchange, dead_exchange = await declare_topology(channel, topology)
        yield Broker(connection, channel, exchange, dead_exchange, topology, settings.prefetch)
    finally:
        await connection.close()


def _log_returned(_channel: Any, message: Any) -> None:
    log.error("message.unroutable", routing_key=getattr(message, "routing_key", None))
