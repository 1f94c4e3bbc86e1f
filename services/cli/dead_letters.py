"""Reading the dead-letter queues without consuming them, and showing what is there."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from rich.table import Table

from shared.broker import REASON_HEADER, WORK_KINDS, Topology, attempt_of
from shared.settings import BrokerSettings


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message: its queue kind, why, after how many attempts of its
    handler (1: dead-lettered at once), and its body."""

    kind: str
    reason: str
    attempts: int
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
                headers = message.headers or {}
                reason = str(headers.get(REASON_HEADER, ""))
                found.append(DeadLetter(kind, reason, attempt_of(headers), message.body))
            for message in held:
                await message.nack(requeue=True)
            await channel.close()
    return found


def dead_letters_table(letters: list[DeadLetter]) -> Table:
    """The listing ``coderm dead-letters`` prints: queue, attempts, reason and body."""
    table = Table(title="dead-lettered messages")
    table.add_column("queue", overflow="fold")
    table.add_column("attempts", justify="right")
    table.add_column("reason", overflow="fold")
    table.add_column("body", overflow="fold")
    for letter in letters:
        table.add_row(
            letter.kind,
            str(letter.attempts),
            letter.reason[:300],
            letter.body[:200].decode(errors="replace"),
        )
    return table
