"""Content-addressed code: solutions and unit tests stored once per problem (and test
style), written idempotently by the extractor and the reward gateway alike."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.extraction import content_hash
from shared.db.models import Solution, UnitTest


async def upsert_code(
    session: AsyncSession,
    table: type[Solution] | type[UnitTest],
    scope: dict[str, object],
    codes: Iterable[str],
) -> dict[str, int]:
    """Insert new solutions or unit tests in one statement; map content hash -> id.

    ``scope`` names the natural key beside the hash: the problem (and the test style).
    """
    by_hash = {content_hash(code): code for code in codes}
    if not by_hash:
        return {}
    await session.execute(
        insert(table)
        .values(
            [{**scope, "content_hash": digest, "code": code} for digest, code in by_hash.items()]
        )
        .on_conflict_do_nothing()
    )
    rows = await session.execute(
        select(table.content_hash, table.id).where(
            *(getattr(table, column) == value for column, value in scope.items()),
            table.content_hash.in_(by_hash),
        )
    )
    return {digest: code_id for digest, code_id in rows}
