"""Generator service entry point: ``python -m services.generator``."""

from __future__ import annotations

import asyncio
import contextlib

from services.generator.backends import Backend, ReplayBackend
from services.generator.handlers import GenerateHandler
from shared.messages import GenerateRequest
from shared.service import ServiceContext, serve
from shared.settings import GeneratorSettings


async def register(ctx: ServiceContext, _stack: contextlib.AsyncExitStack) -> None:
    """Subscribe the generate handler with the backends this process serves."""
    backends: dict[str, Backend] = {"replay": ReplayBackend()}
    handler = GenerateHandler(ctx.sessions, ctx.broker, backends)
    await ctx.broker.consume("generate", GenerateRequest, handler)


def main() -> None:
    """Run the generator until SIGTERM."""
    asyncio.run(serve("generator", GeneratorSettings(), register))


if __name__ == "__main__":
    main()
