"""Extractor service entry point: ``python -m services.extractor``."""

from __future__ import annotations

import asyncio
import contextlib

from services.extractor.handlers import ExtractHandler
from shared.messages import ExtractRequest
from shared.service import ServiceContext, serve
from shared.settings import ExtractorSettings


def main() -> None:
    """Run the extractor until SIGTERM."""
    settings = ExtractorSettings()

    async def register(ctx: ServiceContext, _stack: contextlib.AsyncExitStack) -> None:
        handler = ExtractHandler(
            ctx.sessions, ctx.broker, settings.solutions_per_batch, settings.pairs_per_batch
        )
        await ctx.broker.consume("extract", ExtractRequest, handler)

    asyncio.run(serve("extractor", settings, register))


if __name__ == "__main__":
    main()
