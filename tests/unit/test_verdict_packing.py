"""Packing a segment's verdicts one byte a test, and back."""

from __future__ import annotations

import random

import pytest

from shared.core.verdict_packing import (
    MAX_SLOTS,
    OUTCOME_CODES,
    OVERFLOW_SLOT,
    SEGMENT_SIZE,
    Cell,
    PackedRow,
    merge,
    outcome_bytes,
    outcome_codes,
    pack,
    segment_of,
    unpack,
)
from shared.enums import Outcome


def test_one_byte_a_test_up_to_the_last_verdict() -> None:
    cells = {0: Cell(Outcome.PASS), 3: Cell(Outcome.FAIL, detail_id=7)}
    row = pack(cells)
    assert row.outcomes == bytes([1, 0, 0, 2 | 1 << 3])
    assert row.details == (7,)
    assert row.counts is None and row.overflow is None
    assert unpack(row) == cells


def test_details_share_slots_in_order_of_position() -> None:
    cells = {i: Cell(Outcome.ERROR, detail_id=100 + i % 3) for i in range(9)}
    row = pack(cells)
    assert row.details == (100, 101, 102)
    assert unpack(row) == cells


def test_details_past_the_slots_overflow() -> None:
    cells = {i: Cell(Outcome.ERROR, detail_id=1000 + i) for i in range(MAX_SLOTS + 5)}
    row = pack(cells)
    assert row.details is not None and len(row.details) == MAX_SLOTS
    assert row.overflow == {MAX_SLOTS + i: 1000 + MAX_SLOTS + i for i in range(5)}
    assert row.outcomes[MAX_SLOTS] >> 3 == OVERFLOW_SLOT
    assert unpack(row) == cells


def test_unittest_counts_only_when_some_verdict_has_them() -> None:
    cells = {
        1: Cell(Outcome.FAIL, None, 5, 3),
        2: Cell(Outcome.PASS),
        4: Cell(Outcome.PASS, None, 0, 0),
    }
    row = pack(cells)
    assert row.counts is not None and len(row.counts) == 4 * len(row.outcomes)
    assert unpack(row) == cells


def test_every_outcome_round_trips() -> None:
    cells = {i: Cell(outcome) for i, outcome in enumerate(OUTCOME_CODES)}
    assert unpack(pack(cells)) == cells
    assert [code for _, code in outcome_codes(pack(cells).outcomes)] == [1, 2, 3, 4, 5, 6]
    details = pack({i: Cell(o, detail_id=i) for i, o in enumerate(OUTCOME_CODES)})
    assert outcome_bytes(details.outcomes) == bytes([1, 2, 3, 4, 5, 6])


def test_random_segments_round_trip() -> None:
    rng = random.Random(3)
    for _ in range(200):
        cells = {
            position: Cell(
                rng.choice(list(Outcome)),
                rng.choice([None, rng.randrange(60)]),
                *(rng.choice([(None, None), (rng.randrange(9), rng.randrange(9))])),
            )
            for position in rng.sample(range(SEGMENT_SIZE), rng.randrange(1, 80))
        }
        assert unpack(pack(cells)) == cells


def test_merge_keeps_the_stored_verdict_and_is_idempotent() -> None:
    stored = {0: Cell(Outcome.PASS), 2: Cell(Outcome.FAIL, 4)}
    new = {2: Cell(Outcome.PASS), 5: Cell(Outcome.TIMEOUT, 9)}
    merged = merge(stored, new)
    assert merged == {0: Cell(Outcome.PASS), 2: Cell(Outcome.FAIL, 4), 5: Cell(Outcome.TIMEOUT, 9)}
    assert merge(merged, new) == merged


def test_positions_outside_a_segment_are_refused() -> None:
    with pytest.raises(ValueError):
        pack({SEGMENT_SIZE: Cell(Outcome.PASS)})
    assert pack({}) == PackedRow(b"")


def test_segment_of() -> None:
    assert segment_of(0) == (0, 0)
    assert segment_of(SEGMENT_SIZE + 3) == (1, 3)
