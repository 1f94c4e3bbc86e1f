"""The start-up/shutdown shell every service shares.

Resources are made in one place, handed to the service's ``register`` function in a
``ServiceContext``, and closed in reverse order. SIGTERM/SIGINT stop consuming, let
the handlers in hand finish within a bound (unfinished ones are requeued by the
broker when the channel closes), then exit.

Unless ``metrics_port`` is 0, the service serves ``/metrics``, ``/healthz`` and
``/readyz`` (``shared.observability.server``) from before its ``register`` runs until
it exits; it is ready only between the end of ``register`` and the stop signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.broker import Broker, connect_broker
from shared.db.queries import note_dead_letter_on_run
from shared.db.session import make_engine, make_sessionmaker
from shared.logging import configure_logging
from shared.observability import metrics
from shared.observability.server import BrokerProbe, Endpoint, database_probe, run_progress
from shared.settings import ServiceSettings


@dataclass
class ServiceContext:
    """What a service's handlers need: database sessions, the broker and a logger."""

    name: str
    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    log: structlog.stdlib.BoundLogger


Register = Callable[[ServiceContext, contextlib.AsyncExitStack], Awaitable[None]]


@contextlib.asynccontextmanager
async def service_context(name: str, settings: ServiceSettings) -> AsyncIterator[ServiceContext]:
    """Open the database engine and the broker; close both on exit."""
    log = configure_logging(settings.logging, name)
    engine = make_engine(settings.database)
    try:
        async with connect_broker(settings.broker) as broker:
            yield ServiceContext(name, make_sessionmaker(engine), broker, log)
    finally:
        await engine.dispose()


async def open_endpoint(
    ctx: ServiceContext, settings: ServiceSettings, stack: contextlib.AsyncExitStack
) -> Endpoint:
    """The service's HTTP endpoint, listening unless ``metrics_port`` is 0; closed with
    ``stack``. Ready = the broker and the database answer; every scrape reads the queue
    depths and the running runs' progress."""
    broker = BrokerProbe(ctx.broker)
    endpoint = Endpoint(
        ctx.name,
        settings.metrics_host,
        settings.metrics_port,
        probes={"broker": broker.check, "database": database_probe(ctx.sessions)},
        collectors={"queues": broker.queue_depths, "runs": run_progress(ctx.sessions)},
    )
    stack.push_async_callback(broker.aclose)
    if settings.metrics_port:
        await stack.enter_async_context(endpoint)
    return endpoint


async def serve(
    name: str, settings: ServiceSettings, register: Register, grace_s: float = 30.0
) -> None:
    """Run a service until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics.set_service(name)
    async with service_context(name, settings) as ctx, contextlib.AsyncExitStack() as stack:
        ctx.broker.on_dead_letter = functools.partial(note_dead_letter_on_run, ctx.sessions)
        endpoint = await open_endpoint(ctx, settings, stack)
        await register(ctx, stack)
        endpoint.serving()
        ctx.log.info("service.started")
        await stop.wait()
        ctx.log.info("service.stopping")
        endpoint.stopping()
        await ctx.broker.stop_consuming(grace_s)
    ctx.log.info("service.stopped")
