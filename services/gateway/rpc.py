"""Request/reply with the executors: ``ExecutePairs`` out on the work queue, the
``PairsDone`` back on this gateway's own reply queue, matched by correlation id."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from shared.broker import Broker
from shared.messages import PAIRS_LIMIT, ExecutePairs, PairsDone


@dataclass
class PairsClient:
    """Sends reward work to the executors and awaits their replies.

    The reply queue is exclusive to this process and deleted with it: a reply to a
    gateway that died is dropped, and the verdicts it announces are in the database
    for the retried request.
    """

    broker: Broker
    _channel: AbstractChannel | None = None
    _queue: AbstractQueue | None = None
    _waiting: dict[str, asyncio.Future[PairsDone]] = field(default_factory=dict)

    async def start(self) -> None:
        """Declare the reply queue and consume it."""
        self._channel = await self.broker.connection.channel()
        self._queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        await self._queue.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        """Stop consuming; waiting requests fail."""
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("gateway stopping"))
        if self._channel is not None:
            await self._channel.close()

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        try:
            done = PairsDone.model_validate_json(message.body)
        except ValidationError:
            return
        waiter = self._waiting.pop(done.correlation_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(done)

    async def waiting(self) -> int:
        """Reward requests queued for the executors now (the backpressure gauge; a
        declare on the raw channel, as aio-pika's robust channel answers a repeated
        declare from its cache)."""
        assert self._channel is not None
        raw = await self._channel.get_underlay_channel()
        declared = await raw.queue_declare(self.broker.topology.queue("pairs"), passive=True)
        return int(declared.message_count or 0)

    async def execute(self, bank_id: int, solution_ids: list[int], timeout_s: float) -> int:
        """Have the executors run these solutions against the bank (in chunks of
        :data:`PAIRS_LIMIT`) and wait for every reply; the pairs they ran.
        ``TimeoutError`` past ``timeout_s``."""
        assert self._queue is not None
        waiters: list[asyncio.Future[PairsDone]] = []
        loop = asyncio.get_running_loop()
        for start in range(0, len(solution_ids), PAIRS_LIMIT):
            correlation = uuid.uuid4().hex
            waiter: asyncio.Future[PairsDone] = loop.create_future()
            self._waiting[correlation] = waiter
            waiters.append(waiter)
            await self.broker.publish(
                ExecutePairs(
                    bank_id=bank_id,
                    solution_ids=solution_ids[start : start + PAIRS_LIMIT],
                    reply_to=self._queue.name,
                    correlation_id=correlation,
                )
            )
        try:
            async with asyncio.timeout(timeout_s):
                replies = await asyncio.gather(*waiters)
        finally:
            for key in [k for k, w in self._waiting.items() if w in waiters]:
                self._waiting.pop(key, None)
        return sum(r.executed for r in replies)
