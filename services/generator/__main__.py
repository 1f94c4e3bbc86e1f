"""Generator service entry point: ``python -m services.generator``."""

from __future__ import annotations

import asyncio
import contextlib

from services.generator.engines import open_backends
from services.generator.handlers import GenerateHandler
from shared.messages import GenerateRequest
from shared.service import ServiceContext, serve
from shared.settings import GeneratorSettings


def main() -> None:
    """Run the generator until SIGTERM, ``requests_in_flight`` requests at a time.

    The broker delivers that many generate requests before the first is acked; each
    runs in its own task, so an engine batches the samples of all of them. On SIGTERM
    the requests in hand finish (or, past the grace period, are cancelled, which aborts
    them in the engine, and requeued); then the engines are closed.
    """
    settings = GeneratorSettings()
    settings.broker.prefetch = settings.requests_in_flight

    async def register(ctx: ServiceContext, stack: contextlib.AsyncExitStack) -> None:
        backends = await stack.enter_async_context(open_backends(ctx.sessions, settings))
        handler = GenerateHandler(ctx.sessions, ctx.broker, backends)
        ctx.log.info(
            "generator.config",
            requests_in_flight=settings.requests_in_flight,
            backends=sorted(backends),
        )
        await ctx.broker.consume("generate", GenerateRequest, handler)

    asyncio.run(serve("generator", settings, register))


if __name__ == "__main__":
    main()
