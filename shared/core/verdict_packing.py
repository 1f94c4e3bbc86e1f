"""Packed verdicts: a solution's verdicts under one execution profile, one byte a test.

The verdicts of a (solution, execution profile) are stored per *segment* of the
problem's test ordinals (``unit_tests.ordinal``, dense per problem):
``SEGMENT_SIZE`` ordinals a segment, one row a segment. A row holds

* ``outcomes``: one byte per ordinal of the segment, from its first up to the last one
  with a verdict: the low three bits the outcome (``OUTCOME_CODES``; 0 = no verdict),
  the high five bits a *detail slot*: 0 no detail, 1..30 the index (1-based, as
  PostgreSQL arrays) into ``details``, 31 the detail is in the overflow side table;
* ``details``: the row's distinct detail ids (``verdict_details.id``), or none;
* ``counts``: ``tests_run`` and ``tests_passed`` per ordinal (two big-endian uint16,
  ``0xFFFF`` for none), only when some verdict of the row has them (unittest style).

Pure functions, no I/O: the executor packs and merges with them, the readers unpack.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from shared.enums import Outcome

SEGMENT_SIZE = 256
"""Test ordinals a packed row covers."""

OUTCOME_CODES: Mapping[Outcome, int] = {
    Outcome.PASS: 1,
    Outcome.FAIL: 2,
    Outcome.ERROR: 3,
    Outcome.TIMEOUT: 4,
    Outcome.CRASH: 5,
    Outcome.SANDBOX_ERROR: 6,
}
"""The outcome's code in the low three bits of a verdict byte (0: no verdict)."""

OUTCOMES_BY_CODE: Mapping[int, Outcome] = {code: o for o, code in OUTCOME_CODES.items()}
PASS_CODE = OUTCOME_CODES[Outcome.PASS]
OUTCOME_MASK = 0b111
MAX_SLOTS = 30
"""Distinct details a row holds inline; more go to the overflow table."""
OVERFLOW_SLOT = 31
NO_COUNT = 0xFFFF


@dataclass(frozen=True)
class Cell:
    """One verdict: its outcome, its interned detail (``None``: none) and the unittest
    counts (``None`` where the runner gives none)."""

    outcome: Outcome
    detail_id: int | None = None
    tests_run: int | None = None
    tests_passed: int | None = None


@dataclass(frozen=True)
class PackedRow:
    """A segment's verdicts as stored: see the module docstring. ``overflow``: position
    -> detail id of the verdicts whose detail did not fit in ``details``."""

    outcomes: bytes
    details: tuple[int, ...] | None = None
    counts: bytes | None = None
    overflow: Mapping[int, int] | None = None


def segment_of(ordinal: int) -> tuple[int, int]:
    """(segment, position in it) of a test ordinal."""
    return divmod(ordinal, SEGMENT_SIZE)


def _count_bytes(value: int | None) -> bytes:
    if value is None:
        return NO_COUNT.to_bytes(2, "big")
    return min(max(value, 0), NO_COUNT - 1).to_bytes(2, "big")


def _count_value(raw: bytes) -> int | None:
    value = int.from_bytes(raw, "big")
    return None if value == NO_COUNT else value


def pack(cells: Mapping[int, Cell]) -> PackedRow:
    """Pack a segment's verdicts (position -> cell; positions in ``[0, SEGMENT_SIZE)``).
    Details are given slots in order of first appearance by position."""
    if not cells:
        return PackedRow(b"")
    if min(cells) < 0 or max(cells) >= SEGMENT_SIZE:
        raise ValueError(f"positions must lie in [0, {SEGMENT_SIZE})")
    length = max(cells) + 1
    outcomes = bytearray(length)
    slots: dict[int, int] = {}
    overflow: dict[int, int] = {}
    with_counts = any(c.tests_run is not None or c.tests_passed is not None for c in cells.values())
    counts = bytearray(NO_COUNT.to_bytes(2, "big") * 2 * length) if with_counts else None
    for position in sorted(cells):
        cell = cells[position]
        slot = 0
        if cell.detail_id is not None:
            if cell.detail_id in slots:
                slot = slots[cell.detail_id]
            elif len(slots) < MAX_SLOTS:
                slot = slots[cell.detail_id] = len(slots) + 1
            else:
                slot = OVERFLOW_SLOT
                overflow[position] = cell.detail_id
        outcomes[position] = OUTCOME_CODES[cell.outcome] | slot << 3
        if counts is not None:
            counts[4 * position : 4 * position + 4] = _count_bytes(cell.tests_run) + _count_bytes(
                cell.tests_passed
            )
    return PackedRow(
        bytes(outcomes),
        tuple(slots) or None,
        None if counts is None else bytes(counts),
        overflow or None,
    )


def unpack(row: PackedRow) -> dict[int, Cell]:
    """The verdicts of a packed segment, position -> cell (the inverse of :func:`pack`)."""
    details = row.details or ()
    overflow = row.overflow or {}
    cells: dict[int, Cell] = {}
    for position, byte in enumerate(row.outcomes):
        code = byte & OUTCOME_MASK
        if not code:
            continue
        slot = byte >> 3
        detail = None
        if slot == OVERFLOW_SLOT:
            detail = overflow[position]
        elif slot:
            detail = details[slot - 1]
        run = passed = None
        if row.counts is not None:
            run = _count_value(row.counts[4 * position : 4 * position + 2])
            passed = _count_value(row.counts[4 * position + 2 : 4 * position + 4])
        cells[position] = Cell(OUTCOMES_BY_CODE[code], detail, run, passed)
    return cells


def merge(stored: Mapping[int, Cell], new: Mapping[int, Cell]) -> dict[int, Cell]:
    """A segment's verdicts after writing ``new`` over ``stored``: a stored verdict is
    kept as it is (the first verdict wins, as ``ON CONFLICT DO NOTHING`` did), so writing
    the same verdicts twice changes nothing."""
    return {**new, **stored}


_CODES = bytes(byte & OUTCOME_MASK for byte in range(256))


def outcome_bytes(outcomes: bytes) -> bytes:
    """The outcome codes of a packed segment, one byte a position, detail bits dropped
    (one C-level pass: the readers' fast path)."""
    return outcomes.translate(_CODES)


def outcome_codes(outcomes: bytes) -> Iterator[tuple[int, int]]:
    """(position, outcome code) of every verdict of a packed segment, detail bits
    dropped: the readers' fast path."""
    for position, byte in enumerate(outcomes):
        code = byte & OUTCOME_MASK
        if code:
            yield position, code
