"""Reading the dead-letter queues without consuming them."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika

from shared.broker import REASON_HEADER, WORK_KINDS, Topology
from shared.settings import BrokerSettings


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message: its queue kind, why, and its body."""

    kind: str
    reason: str
    body: bytes


async def peek_dead_letters(settings: BrokerSettings, limit: int) -> list[DeadLetter]:
    """Up to ``limit`` messages of each dead-letter queue; every one is put back."""
    topology = Topology(settings.queue_prefix)
    found: list[DeadLetter] = []
    connection = await aio_pika.connect_robust(settings.url.get_secret_value())
    async with connection:
        for kind in WORK_KINDS:
            channel = await connection.channel()
            queue = await channel.declare_queue(topology.dead_queue(kind), passive=True)
            held = []
            for _ in range(limit):
                message = await queue.get(fail=False, no_ack=False)
                if message is None:
                    break
                held.append(message)
                reason = (message.headers or {}).get(REASON_HEADER, "")
                found.append(DeadLetter(kind, str(reason), message.body))
            for message in held:
                await message.nack(requeue=True)
            await channel.close()
    return found
