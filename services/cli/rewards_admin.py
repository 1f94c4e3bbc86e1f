"""``coderm token add|list|revoke`` and ``coderm bank create|list``: what the reward
gateway needs before it can answer (docs/REWARDS.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import store
from services.cli.errors import UserError
from services.cli.shell import console, with_sessions
from shared.core.tokens import new_token, token_hash
from shared.db.banks import banks_from_run
from shared.db.models import Benchmark, Problem
from shared.db.reward_models import ApiToken, TestBank, TestBankTest
from shared.enums import RunState

token_app = typer.Typer(help="API tokens of the reward gateway.", no_args_is_help=True)
bank_app = typer.Typer(help="Test banks the reward gateway scores with.", no_args_is_help=True)


@token_app.command("add")
def token_add(name: Annotated[str, typer.Argument(help="who or what uses it")]) -> None:
    """Make a token and print it once."""
    secret = new_token()

    async def work(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions.begin() as session:
            if await session.scalar(select(ApiToken.id).where(ApiToken.name == name)):
                raise UserError(f"a token named {name!r} exists (coderm token revoke {name})")
            session.add(ApiToken(name=name, token_hash=token_hash(secret)))

    with_sessions(work)
    console.print(f"token {name}: {secret}")
    console.print("it is shown only now; the gateway stores its SHA-256")


@token_app.command("list")
def token_list() -> None:
    """Every token: name, created, last used, revoked."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> list[ApiToken]:
        async with sessions() as session:
            return list(await session.scalars(select(ApiToken).order_by(ApiToken.id)))

    table = Table("name", "created", "last used", "revoked")
    for t in with_sessions(work):
        table.add_row(
            t.name,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a token: the gateway refuses it from now on."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> int:
        async with sessions.begin() as session:
            result = await session.execute(
                update(ApiToken)
                .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    if not with_sessions(work):
        raise typer.Exit(_missing(f"no live token named {name!r}"))
    console.print(f"token {name} revoked")


def _missing(message: str) -> int:
    console.print(f"[red]error:[/red] {message}")
    return 2


@bank_app.command("create")
def bank_create(
    from_run: Annotated[str, typer.Option(help="a finished run: id or unique prefix")],
) -> None:
    """A test bank per scored problem of a finished run: its unique tests, run with the
    run's limits (its verdicts are reused)."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
        async with sessions.begin() as session:
            run = await store.find_run(session, from_run)
            if run.state != RunState.FINISHED.value:
                raise UserError(f"run {run.id} is {run.state}; a bank needs a finished run")
            return await banks_from_run(session, run)

    made = with_sessions(work)
    console.print(f"{len(made)} test banks from run {from_run}")


@bank_app.command("list")
def bank_list(
    benchmark: Annotated[str | None, typer.Option(help="only this benchmark")] = None,
) -> None:
    """Banks per benchmark: problems covered, tests, source."""

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> list[tuple[str, str, int, int]]:
        async with sessions() as session:
            query = (
                select(
                    Benchmark.name,
                    TestBank.source,
                    func.count(func.distinct(TestBank.id)),
                    func.count(TestBankTest.unit_test_id),
                )
                .join(Problem, Problem.id == TestBank.problem_id)
                .join(Benchmark, Benchmark.id == Problem.benchmark_id)
                .join(TestBankTest, TestBankTest.bank_id == TestBank.id)
                .group_by(Benchmark.name, TestBank.source)
                .order_by(Benchmark.name, TestBank.source)
            )
            if benchmark is not None:
                query = query.where(Benchmark.name == benchmark)
            return [(b, s, int(n), int(t)) for b, s, n, t in await session.execute(query)]

    table = Table("benchmark", "source", "problems", "tests")
    for b, s, n, t in with_sessions(work):
        table.add_row(b, s, str(n), str(t))
    console.print(table)
