"""Scorer service entry point: ``python -m services.scorer``."""

from __future__ import annotations

import asyncio
import contextlib

from services.scorer.handlers import ScoreHandler
from shared.messages import ScoreProblem
from shared.service import ServiceContext, serve
from shared.settings import ScorerSettings


async def register(ctx: ServiceContext, _stack: contextlib.AsyncExitStack) -> None:
    """Subscribe the score handler."""
    await ctx.broker.consume("score", ScoreProblem, ScoreHandler(ctx.sessions, ctx.broker))


def main() -> None:
    """Run the scorer until SIGTERM."""
    asyncio.run(serve("scorer", ScorerSettings(), register))


if __name__ == "__main__":
    main()
