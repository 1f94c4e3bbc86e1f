"""The verdict store: the one reader and writer of packed verdicts
(:mod:`shared.core.verdict_packing`), for the executor, the scorer, the reports and the
gateway alike.

A verdict of a (solution, unit test, execution profile) is stored once, in the row of
(solution, profile, segment of the test's ordinal); every run with that profile reuses
it. Writes merge into the stored rows, the stored verdict winning, so they are
idempotent; new rows go through ``COPY`` into a staging table.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, BindParameter, any_, bindparam, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from shared.core.verdict_packing import (
    OUTCOMES_BY_CODE,
    PASS_CODE,
    Cell,
    PackedRow,
    merge,
    outcome_bytes,
    pack,
    segment_of,
    unpack,
)
from shared.db.models import (
    ExecProfile,
    Solution,
    UnitTest,
    Verdict,
    VerdictDetail,
    VerdictDetailOverflow,
)
from shared.enums import Outcome

Pair = tuple[int, int]
"""(solution id, unit test id)."""
Key = tuple[int, int, int]
"""(solution id, profile id, segment): a packed row's key."""


@dataclass(frozen=True)
class VerdictRow:
    """One verdict to store."""

    solution_id: int
    unit_test_id: int
    outcome: Outcome
    detail: str | None = None
    tests_run: int | None = None
    tests_passed: int | None = None


async def profile_id(session: AsyncSession, name: str, *, create: bool = False) -> int | None:
    """The interned id of an execution profile (made when ``create``; else ``None`` for
    a profile with no verdict)."""
    if create:
        await session.execute(insert(ExecProfile).values(name=name).on_conflict_do_nothing())
    found: int | None = await session.scalar(select(ExecProfile.id).where(ExecProfile.name == name))
    return found


async def test_ordinals(session: AsyncSession, test_ids: Iterable[int]) -> dict[int, int]:
    """Unit test id -> its ordinal in its problem's test list."""
    ids = set(test_ids)
    if not ids:
        return {}
    rows = await session.execute(select(UnitTest.id, UnitTest.ordinal).where(UnitTest.id.in_(ids)))
    return {tid: ordinal for tid, ordinal in rows}


ID_ARRAY: TypeEngine[Any] = ARRAY(BigInteger)


def _ids(values: Iterable[int]) -> BindParameter[Any]:
    """An id list as one array parameter (``= ANY(...)``), not one parameter an id."""
    return bindparam(None, sorted(set(values)), type_=ID_ARRAY)


@dataclass(frozen=True)
class _Segments:
    """The stored rows read for a question: each solution's segment codes, and where
    the asked-for tests sit ((problem, segment) -> position -> test id)."""

    rows: list[tuple[int, int, int, bytes]]
    places: dict[tuple[int, int], dict[int, int]]


async def _read(
    session: AsyncSession, profile: str, solution_ids: Collection[int], test_ids: Collection[int]
) -> _Segments:
    empty = _Segments([], {})
    if not solution_ids or not test_ids:
        return empty
    pid = await profile_id(session, profile)
    if pid is None:
        return empty
    tests = await session.execute(
        select(UnitTest.id, UnitTest.problem_id, UnitTest.ordinal).where(
            UnitTest.id == any_(_ids(test_ids))
        )
    )
    places: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for tid, problem, ordinal in tests:
        segment, position = segment_of(ordinal)
        places[problem, segment][position] = tid
    rows = await session.execute(
        select(Verdict.solution_id, Solution.problem_id, Verdict.segment, Verdict.outcomes)
        .join(Solution, Solution.id == Verdict.solution_id)
        .where(
            Verdict.profile_id == pid,
            Verdict.solution_id == any_(_ids(solution_ids)),
            Verdict.segment.in_({segment for _, segment in places}),
        )
    )
    return _Segments(
        [(sid, problem, segment, outcome_bytes(o)) for sid, problem, segment, o in rows], places
    )


def _matching(read: _Segments, pattern: re.Pattern[bytes]) -> set[Pair]:
    """The asked-for pairs whose outcome code matches ``pattern`` (one byte)."""
    found: set[Pair] = set()
    for sid, problem, segment, codes in read.rows:
        here = read.places.get((problem, segment))
        if not here:
            continue
        for match in pattern.finditer(codes):
            test_id = here.get(match.start())
            if test_id is not None:
                found.add((sid, test_id))
    return found


_ANY = re.compile(b"[^\x00]")
_PASS = re.compile(re.escape(bytes([PASS_CODE])))


async def load_outcomes(
    session: AsyncSession, profile: str, solution_ids: Collection[int], test_ids: Collection[int]
) -> dict[Pair, Outcome]:
    """The stored outcome of every (solution, test) pair of the same problem among
    ``solution_ids`` x ``test_ids`` under ``profile`` that has one."""
    read = await _read(session, profile, solution_ids, test_ids)
    found: dict[Pair, Outcome] = {}
    for sid, problem, segment, codes in read.rows:
        for position, test_id in read.places.get((problem, segment), {}).items():
            if position < len(codes) and codes[position]:
                found[sid, test_id] = OUTCOMES_BY_CODE[codes[position]]
    return found


async def stored_pairs(
    session: AsyncSession, profile: str, solution_ids: Collection[int], test_ids: Collection[int]
) -> set[Pair]:
    """The pairs among ``solution_ids`` x ``test_ids`` with a stored verdict."""
    return _matching(await _read(session, profile, solution_ids, test_ids), _ANY)


async def passed_pairs(
    session: AsyncSession, profile: str, solution_ids: Collection[int], test_ids: Collection[int]
) -> set[Pair]:
    """The pairs among ``solution_ids`` x ``test_ids`` whose stored verdict is a pass."""
    return _matching(await _read(session, profile, solution_ids, test_ids), _PASS)


def _digest(detail: str) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(detail.encode()).hexdigest())


async def detail_ids(session: AsyncSession, details: Iterable[str]) -> dict[str, int]:
    """Intern detail texts: text -> id (stored if new)."""
    by_digest = {_digest(d): d for d in set(details)}
    if not by_digest:
        return {}
    await session.execute(
        insert(VerdictDetail)
        .values([{"digest": g, "detail": d} for g, d in sorted(by_digest.items())])
        .on_conflict_do_nothing()
    )
    rows = await session.execute(
        select(VerdictDetail.digest, VerdictDetail.id).where(VerdictDetail.digest.in_(by_digest))
    )
    return {by_digest[digest]: did for digest, did in rows}


def group_cells(
    rows: Sequence[VerdictRow],
    pid: int,
    ordinals: Mapping[int, int],
    details: Mapping[str, int],
) -> dict[Key, dict[int, Cell]]:
    """Verdicts to store, grouped by packed row (key -> position -> cell)."""
    cells: dict[Key, dict[int, Cell]] = defaultdict(dict)
    for row in rows:
        segment, position = segment_of(ordinals[row.unit_test_id])
        cells[row.solution_id, pid, segment].setdefault(
            position,
            Cell(
                row.outcome,
                details[row.detail] if row.detail else None,
                row.tests_run,
                row.tests_passed,
            ),
        )
    return cells


async def _stored(session: AsyncSession, keys: Collection[Key]) -> dict[Key, dict[int, Cell]]:
    """The stored verdicts of ``keys``' rows, locked until the transaction ends."""
    if not keys:
        return {}
    key_columns = tuple_(Verdict.solution_id, Verdict.profile_id, Verdict.segment)
    rows = await session.execute(
        select(
            Verdict.solution_id,
            Verdict.profile_id,
            Verdict.segment,
            Verdict.outcomes,
            Verdict.details,
            Verdict.counts,
        )
        .where(key_columns.in_(sorted(keys)))
        .order_by(Verdict.solution_id, Verdict.profile_id, Verdict.segment)
        .with_for_update()
    )
    packed = {(s, p, g): (o, d, c) for s, p, g, o, d, c in rows}
    overflow: dict[Key, dict[int, int]] = defaultdict(dict)
    if packed:
        spilled = await session.execute(
            select(
                VerdictDetailOverflow.solution_id,
                VerdictDetailOverflow.profile_id,
                VerdictDetailOverflow.segment,
                VerdictDetailOverflow.position,
                VerdictDetailOverflow.detail_id,
            ).where(
                tuple_(
                    VerdictDetailOverflow.solution_id,
                    VerdictDetailOverflow.profile_id,
                    VerdictDetailOverflow.segment,
                ).in_(sorted(packed))
            )
        )
        for s, p, g, position, did in spilled:
            overflow[s, p, g][position] = did
    return {
        key: unpack(PackedRow(o, tuple(d) if d else None, c, overflow.get(key)))
        for key, (o, d, c) in packed.items()
    }


STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS verdicts_staging "
    "(solution_id bigint, profile_id smallint, segment smallint, outcomes bytea, "
    "details int[], counts bytea, is_new boolean) ON COMMIT DELETE ROWS"
)
COLUMNS = ("solution_id", "profile_id", "segment", "outcomes", "details", "counts", "is_new")


async def _write(
    session: AsyncSession, rows: Mapping[Key, PackedRow], new: Collection[Key]
) -> set[Key]:
    """Write packed rows (``new``: keys with no stored row when read) through one COPY;
    returns the new keys another writer stored first (to merge and write again)."""
    await session.execute(text(STAGING))
    await session.execute(text("TRUNCATE verdicts_staging"))
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    pg = raw.driver_connection
    assert pg is not None
    await pg.copy_records_to_table(
        "verdicts_staging",
        records=[
            (
                s,
                p,
                g,
                row.outcomes,
                list(row.details) if row.details else None,
                row.counts,
                (s, p, g) in new,
            )
            for (s, p, g), row in rows.items()
        ],
        columns=list(COLUMNS),
    )
    inserted = await pg.fetch(
        "INSERT INTO verdicts (solution_id, profile_id, segment, outcomes, details, counts) "
        "SELECT solution_id, profile_id, segment, outcomes, details, counts "
        "FROM verdicts_staging WHERE is_new ORDER BY solution_id, profile_id, segment "
        "ON CONFLICT DO NOTHING RETURNING solution_id, profile_id, segment"
    )
    await pg.execute(
        "UPDATE verdicts v SET outcomes = s.outcomes, details = s.details, counts = s.counts "
        "FROM verdicts_staging s WHERE NOT s.is_new AND v.solution_id = s.solution_id "
        "AND v.profile_id = s.profile_id AND v.segment = s.segment"
    )
    lost = set(new) - {(r[0], r[1], r[2]) for r in inserted}
    spilled = [
        (s, p, g, position, did)
        for (s, p, g), row in rows.items()
        if (s, p, g) not in lost
        for position, did in (row.overflow or {}).items()
    ]
    if spilled:
        await session.execute(
            insert(VerdictDetailOverflow)
            .values(
                [
                    dict(
                        zip(
                            ("solution_id", "profile_id", "segment", "position", "detail_id"),
                            r,
                            strict=True,
                        )
                    )
                    for r in spilled
                ]
            )
            .on_conflict_do_nothing()
        )
    return lost


async def save_verdicts(session: AsyncSession, profile: str, rows: Sequence[VerdictRow]) -> None:
    """Store verdicts under ``profile``; a verdict already stored (redelivery, a replica
    that raced us, another run) is left as it is."""
    if not rows:
        return
    pid = await profile_id(session, profile, create=True)
    assert pid is not None
    ordinals = await test_ordinals(session, (r.unit_test_id for r in rows))
    details = await detail_ids(session, (r.detail for r in rows if r.detail))
    pending = group_cells(rows, pid, ordinals, details)
    while pending:
        stored = await _stored(session, pending)
        merged: dict[Key, PackedRow] = {}
        for key, cells in pending.items():
            before = stored.get(key)
            after = cells if before is None else merge(before, cells)
            if before is None or after != before:
                merged[key] = pack(after)
        new = {key for key in merged if key not in stored}
        lost = await _write(session, merged, new) if merged else set()
        pending = {key: pending[key] for key in lost}
