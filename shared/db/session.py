"""Async engine and session factory, made once at start-up and passed in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.settings import DatabaseSettings


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Create the async engine (asyncpg) for the configured database."""
    return create_async_engine(
        settings.url.get_secret_value(), pool_size=settings.pool_size, pool_pre_ping=True
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
