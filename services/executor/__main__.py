"""Executor service entry point: ``python -m services.executor``."""

from __future__ import annotations

import asyncio
import contextlib

import aiodocker

from services.executor.handlers import ExecuteHandler
from services.executor.sandbox import DockerSandbox
from shared.messages import ExecuteBatch
from shared.service import ServiceContext, serve
from shared.settings import ExecutorSettings


def main() -> None:
    """Run the executor until SIGTERM; its prefetch is its sandbox concurrency."""
    settings = ExecutorSettings()
    settings.broker.prefetch = settings.concurrency

    async def register(ctx: ServiceContext, stack: contextlib.AsyncExitStack) -> None:
        docker = aiodocker.Docker(url=settings.sandbox.docker_url)
        stack.push_async_callback(docker.close)
        sandbox = DockerSandbox(docker, settings.sandbox)
        removed = await sandbox.remove_stale_containers()
        ctx.log.info("sandbox.ready", image=settings.sandbox.image, stale_removed=removed)
        handler = ExecuteHandler(ctx.sessions, ctx.broker, sandbox)
        await ctx.broker.consume("execute", ExecuteBatch, handler)

    asyncio.run(serve("executor", settings, register))


if __name__ == "__main__":
    main()
