"""Executor service entry point: ``python -m services.executor``."""

from __future__ import annotations

import asyncio
import contextlib

import aiodocker

from sandbox.client import DockerSandbox, Sandbox, WarmSandbox, make_sandbox
from sandbox.client.sweeper import ContainerSweeper, owner_labels, owner_token, sweeping
from services.executor.code_cache import UnitTestCache
from services.executor.expected_handler import (
    DatabaseExpectedStore,
    ExpectedHandler,
    sandbox_compute,
)
from services.executor.handlers import ExecuteHandler
from services.executor.pairs_handler import PairsHandler
from shared.messages import ComputeExpected, ExecuteBatch, ExecutePairs
from shared.service import ServiceContext, serve
from shared.settings import ExecutorSettings


def main() -> None:
    """Run the executor until SIGTERM: ``concurrency`` sandboxes at once (batches and
    expected-outputs requests alike), one or more batches more in hand (see
    ExecutorSettings)."""
    settings = ExecutorSettings()
    settings.broker.prefetch = settings.concurrency + settings.prefetch_extra

    async def register(ctx: ServiceContext, stack: contextlib.AsyncExitStack) -> None:
        # the sandbox backend (CODERM_SANDBOX__BACKEND): Docker, or bwrap without a daemon
        if settings.sandbox.backend == "bwrap":
            sandbox: Sandbox = make_sandbox(settings.sandbox)
        else:
            docker = aiodocker.Docker(url=settings.sandbox.docker_url)
            stack.push_async_callback(docker.close)
            token = owner_token(settings.instance)
            sandbox = make_sandbox(settings.sandbox, docker, labels=owner_labels(token))
            # what a failed delete left (the engine restarted under a batch) goes while
            # this executor runs, not only when the next one starts
            await stack.enter_async_context(sweeping(ContainerSweeper(docker, token)))
        removed = await sandbox.remove_stale_containers()
        ctx.log.info(
            "sandbox.ready",
            backend=settings.sandbox.backend,
            image=settings.sandbox.image,
            stale_removed=removed,
        )
        slots = asyncio.Semaphore(settings.concurrency)
        handler = ExecuteHandler(
            ctx.sessions,
            ctx.broker,
            sandbox,
            slots=slots,
            tests=UnitTestCache(max_chars=settings.test_cache_mb << 20),
            instance=settings.instance,
        )
        ctx.log.info(
            "executor.config",
            instance=settings.instance,
            concurrency=settings.concurrency,
            prefetch=settings.broker.prefetch,
        )
        await ctx.broker.consume("execute", ExecuteBatch, handler)
        expected = ExpectedHandler(
            DatabaseExpectedStore(ctx.sessions),
            sandbox_compute(sandbox),
            slots,
            instance=settings.instance,
        )
        await ctx.broker.consume("expected", ComputeExpected, expected)
        rewards_sandbox = sandbox
        if isinstance(sandbox, DockerSandbox) and settings.warm_sandboxes > 0:
            warm = WarmSandbox(sandbox, settings.warm_sandboxes, settings.warm_max_idle_s)
            warm.start()
            stack.push_async_callback(warm.close)
            rewards_sandbox = warm
        rewards = PairsHandler(
            ctx.sessions,
            ctx.broker,
            rewards_sandbox,
            asyncio.Semaphore(settings.reward_slots),
            instance=settings.instance,
        )
        await ctx.broker.consume("pairs", ExecutePairs, rewards)

    asyncio.run(serve("executor", settings, register))


if __name__ == "__main__":
    main()
