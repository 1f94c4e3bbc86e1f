"""The verdict store against PostgreSQL on its own database: merges keep the stored
verdict, details past the inline slots and unittest counts survive, and migration
0009's downgrade and upgrade give back the same verdicts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from shared.db.verdicts import VerdictRow, load_outcomes, save_verdicts
from shared.enums import Outcome
from tests.stack import ROOT, Stack, create_stack, drop_stack

pytestmark = pytest.mark.integration
ROWS = [
    VerdictRow(
        1,
        t,
        Outcome.FAIL if t % 3 else Outcome.PASS,
        None if t % 3 == 0 else f"detail {t % 40}",
        t % 7,
        t % 5,
    )
    for t in range(1, 301)
] + [VerdictRow(2, 280, Outcome.TIMEOUT, "late")]
VIEW = (
    "SELECT solution_id, unit_test_id, outcome, tests_run, tests_passed, detail "
    "FROM executions ORDER BY 1, 2"
)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database of its own (fixed ids, migrated down and up)."""
    stack = create_stack(tmp_path_factory.mktemp("verdict-store"))
    yield stack
    drop_stack(stack)


async def _fill(url: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            for sql in (
                "INSERT INTO benchmarks (id, name, source) VALUES (1, 'b', '')",
                "INSERT INTO problems (id, benchmark_id, task_id, position, prompt, "
                "entry_point, canonical_solution, test_code) VALUES (1, 1, 't', 0, '', 'f', "
                "'', '')",
                "INSERT INTO solutions (id, problem_id, content_hash, code) "
                "VALUES (1, 1, 'a', ''), (2, 1, 'b', '')",
                "INSERT INTO unit_tests (id, problem_id, style, content_hash, code) "
                "SELECT g, 1, 'unittest', 'h' || g, '' FROM generate_series(1, 300) g",
                "INSERT INTO unit_tests (id, problem_id, style, content_hash, code) "
                "VALUES (999, 1, 'unittest', 'h5', '') ON CONFLICT DO NOTHING",
            ):
                await session.execute(text(sql))
        for batch in (ROWS[:150], ROWS, [VerdictRow(1, 1, Outcome.ERROR, "other")]):
            async with sessions.begin() as session:
                await save_verdicts(session, "P", batch)
        async with sessions() as session:
            outcomes = await load_outcomes(session, "P", [1, 2], range(1, 301))
            assert len(outcomes) == len(ROWS)
            assert outcomes[1, 1] is Outcome.FAIL  # the stored verdict won
            ordinals = (
                await session.execute(
                    text(
                        "SELECT max(ordinal), (SELECT test_ordinals FROM problems) FROM unit_tests"
                    )
                )
            ).one()
            assert tuple(ordinals) == (299, 300)  # the conflicting insert took no ordinal
            assert await session.scalar(text("SELECT count(*) FROM verdict_detail_overflow"))
            return [tuple(r) for r in (await session.execute(text(VIEW))).all()]
    finally:
        await engine.dispose()


async def _view(url: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return [tuple(r) for r in (await connection.execute(text(VIEW))).all()]
    finally:
        await engine.dispose()


def _alembic(stack: Stack, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**stack.env(), "PYTHONPATH": str(Path(ROOT))},
        check=True,
        capture_output=True,
    )


def test_packed_verdicts_round_trip_through_the_store_and_the_migration(own: Stack) -> None:
    written = sorted(
        (r.solution_id, r.unit_test_id, r.outcome.value, r.tests_run, r.tests_passed, r.detail)
        for r in ROWS
    )
    assert asyncio.run(_fill(own.database_url)) == written
    _alembic(own, "downgrade", "0008")
    assert asyncio.run(_view(own.database_url)) == written  # the old table, unpacked
    _alembic(own, "upgrade", "head")
    assert asyncio.run(_view(own.database_url)) == written
