"""Ask the executor for a benchmark's missing expected outputs, and wait for them.

``coderm import-benchmark`` calls this after storing the problems: every ``outputs``
problem whose ``oracle`` has no ``expected`` yet is named in a ``ComputeExpected``
message (up to ``EXPECTED_CHUNK`` problems each) on the ``expected`` queue; an executor
runs the canonical solutions in its sandbox and stores the outputs, or why there are
none (``unavailable``). The CLI needs no Docker: it publishes, then watches the
database until every problem it asked for has its outcome.

A problem whose canonical solution failed before is asked for again: its
``unavailable`` becomes ``EXPECTED_REQUESTED`` (still unlabelled for runs) before the
messages go out, so the outcome the executor writes next is told apart from the old one.
If no executor consumes the queue for ``executor_wait_s``, or a request is
dead-lettered, the wait ends with an error; the requests stay queued (or listed by
``coderm dead-letters``), and the import can be run again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Text, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli.errors import UserError
from shared.broker import Broker, connect_broker
from shared.core.oracle import GroundTruthKind
from shared.db.models import Benchmark, Problem
from shared.messages import EXPECTED_CHUNK, EXPECTED_REQUESTED, ComputeExpected
from shared.settings import BrokerSettings

KIND = "expected"
POLL_S = 0.5


class ExpectedWaitError(UserError):
    """The executor did not compute the requested outputs (none consuming, or a request
    dead-lettered); what was asked for is not lost."""


@dataclass
class ExpectedReport:
    """What one call computed: problems done now, already done, and failures by task id."""

    computed: int = 0
    already: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectedRequest:
    """The problems an import asks the executor for, and how many are done already."""

    benchmark_id: int
    problem_ids: list[int]
    already: int

    def messages(self) -> list[ComputeExpected]:
        """The ``ComputeExpected`` messages naming the problems, in order."""
        ids = self.problem_ids
        return [
            ComputeExpected(
                benchmark_id=self.benchmark_id, problem_ids=ids[start : start + EXPECTED_CHUNK]
            )
            for start in range(0, len(ids), EXPECTED_CHUNK)
        ]


async def request_expected(session: AsyncSession, benchmark: str) -> ExpectedRequest:
    """The benchmark's evalplus problems without expected outputs (in order), after
    marking those that failed before as asked for again."""
    benchmark_id = await session.scalar(select(Benchmark.id).where(Benchmark.name == benchmark))
    if benchmark_id is None:
        raise UserError(f"no benchmark {benchmark!r}")
    rows = await session.execute(
        select(Problem.id, Problem.oracle.op("->>")("expected").is_not(None))
        .where(
            Problem.benchmark_id == benchmark_id,
            Problem.ground_truth == GroundTruthKind.OUTPUTS.value,
        )
        .order_by(Problem.position)
    )
    pending, done = [], 0
    for problem_id, has_expected in rows:
        if has_expected:
            done += 1
        else:
            pending.append(problem_id)
    if pending:
        mark = func.jsonb_build_object(cast("unavailable", Text), cast(EXPECTED_REQUESTED, Text))
        await session.execute(
            update(Problem)
            .where(
                Problem.id.in_(pending),
                Problem.oracle.op("->>")("expected").is_(None),
                Problem.oracle.op("->>")("unavailable").is_not(None),
            )
            .values(oracle=Problem.oracle.op("||")(mark))
        )
    return ExpectedRequest(benchmark_id, pending, done)


async def outcomes(session: AsyncSession, problem_ids: list[int]) -> ExpectedReport:
    """How many of the problems have expected outputs now, and why the others that have
    an outcome have none (by task id); problems without an outcome yet are in neither."""
    report = ExpectedReport()
    rows = await session.execute(
        select(
            Problem.task_id,
            Problem.oracle.op("->>")("expected").is_not(None),
            Problem.oracle.op("->>")("unavailable"),
        ).where(Problem.id.in_(problem_ids))
    )
    for task_id, has_expected, unavailable in rows:
        if has_expected:
            report.computed += 1
        elif unavailable is not None and unavailable != EXPECTED_REQUESTED:
            report.failed[str(task_id)] = str(unavailable)
    return report


async def _queue_counts(broker: Broker, queue: str) -> tuple[int, int]:
    """``(messages ready, consumers)`` of one queue now (a passive declaration on the
    underlying channel: aio-pika's robust channel answers a passive declaration of a
    queue it knows with the first answer)."""
    channel = await broker.channel.get_underlay_channel()
    result = await channel.queue_declare(queue, passive=True)
    return int(result.message_count or 0), int(result.consumer_count or 0)


async def _wait(
    sessions: async_sessionmaker[AsyncSession],
    broker: Broker,
    request: ExpectedRequest,
    progress: Callable[[int, int], None] | None,
    executor_wait_s: float,
) -> ExpectedReport:
    """Poll the database until every requested problem has its outcome."""
    total = len(request.problem_ids)
    queue, dead = broker.topology.queue(KIND), broker.topology.dead_queue(KIND)
    dead_before, _ = await _queue_counts(broker, dead)
    consumed_at = time.monotonic()
    while True:
        async with sessions() as session:
            report = await outcomes(session, request.problem_ids)
        done = report.computed + len(report.failed)
        if progress is not None:
            progress(done, total)
        if done >= total:
            return report
        waiting, consumers = await _queue_counts(broker, queue)
        if (await _queue_counts(broker, dead))[0] > dead_before:
            raise ExpectedWaitError(
                f"expected outputs: a request was dead-lettered ({total - done} of {total} "
                "problems without an outcome); see `coderm dead-letters`"
            )
        if consumers:
            consumed_at = time.monotonic()
        elif time.monotonic() - consumed_at > executor_wait_s:
            raise ExpectedWaitError(
                f"expected outputs: no executor consumed {queue} for {executor_wait_s:g} s; "
                f"{total - done} of {total} problems wait for one; their requests stay queued "
                f"({waiting} in {queue}): start the executor (make up) and import again"
            )
        await asyncio.sleep(POLL_S)


async def fill_expected_outputs(
    sessions: async_sessionmaker[AsyncSession],
    broker_settings: BrokerSettings,
    benchmark: str,
    progress: Callable[[int, int], None] | None = None,
    executor_wait_s: float = 60.0,
) -> ExpectedReport:
    """Ask the executor for the missing expected outputs of ``benchmark`` and wait until
    they are stored; ``progress(done, total)`` after each look at the database."""
    async with sessions.begin() as session:
        request = await request_expected(session, benchmark)
    if not request.problem_ids:
        return ExpectedReport(already=request.already)
    async with connect_broker(broker_settings) as broker:
        await broker.publish_many(request.messages())
        report = await _wait(sessions, broker, request, progress, executor_wait_s)
    report.already = request.already
    return report
