"""Gateway service entry point: ``python -m services.gateway``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from services.gateway.app import Gateway, create_app
from services.gateway.banks import BankMaker
from services.gateway.rpc import PairsClient
from services.gateway.scoring import Scorer
from shared.service import ServiceContext, serve
from shared.settings import GatewaySettings


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside the service shell, which owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the signals to the service shell."""
        yield


def main() -> None:
    """Serve the reward API until SIGTERM."""
    settings = GatewaySettings()

    async def register(ctx: ServiceContext, stack: contextlib.AsyncExitStack) -> None:
        pairs = PairsClient(ctx.broker)
        await pairs.start()
        stack.push_async_callback(pairs.close)
        banks = BankMaker(ctx.sessions, ctx.broker, settings)
        scorer = Scorer(ctx.sessions, pairs, settings.request_timeout_s, banks)
        app = create_app(Gateway(settings, ctx.sessions, pairs, scorer))
        server = EmbeddedServer(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        task = asyncio.create_task(server.serve())

        async def shutdown() -> None:
            server.should_exit = True
            await task

        stack.push_async_callback(shutdown)
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the gateway's HTTP server stopped at start")
            await asyncio.sleep(0.05)
        ctx.log.info("gateway.listening", host=settings.host, port=settings.port)

    asyncio.run(serve("gateway", settings, register))


if __name__ == "__main__":
    main()
