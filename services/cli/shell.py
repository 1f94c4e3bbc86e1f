"""What every CLI command shares: the console, user-fixable errors as one line, and a
database session factory for one command's work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli.importers import ImportFormatError
from shared.db.session import make_engine, make_sessionmaker
from shared.errors import RequestError
from shared.settings import ServiceSettings

console = Console()
T = TypeVar("T")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report what a user can fix as one ``error:`` line and exit 2, instead of a traceback.

    That is a :class:`~shared.errors.RequestError` (the CLI's
    :class:`~services.cli.errors.UserError` is one), a malformed input file
    (``ImportFormatError``), settings that fail validation, or an ``OSError`` (the stack
    is not reachable). Anything else, a ``KeyError`` or ``IndexError`` included, is a bug:
    it propagates with its traceback (exit 1).
    """
    try:
        yield
    except (RequestError, ImportFormatError, ValidationError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    except OSError as error:
        console.print(f"[red]error:[/red] {error}; is the stack up? (make up)")
        raise typer.Exit(2) from error


def with_sessions(work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run ``work`` with a session factory on the configured database, then dispose of it."""

    async def main() -> T:
        engine = make_engine(ServiceSettings().database)
        try:
            return await work(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    with user_errors():
        return asyncio.run(main())
