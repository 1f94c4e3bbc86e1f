"""Tests of shared/core/batching.py (execution batch sizes)."""

from __future__ import annotations

import pytest

from shared.core.batching import solutions_per_batch, split_batches


@pytest.mark.parametrize(
    ("tests", "pairs", "cap", "expected"),
    [
        pytest.param(13, 1000, 100, 71, id="unittest-classes"),
        pytest.param(50, 1000, 100, 19, id="codet-asserts"),
        pytest.param(0, 1000, 100, 100, id="labels-only-capped"),
        pytest.param(5000, 1000, 100, 1, id="at-least-one"),
        pytest.param(9, 10, 100, 1, id="exactly-one"),
        pytest.param(4, 1000, 10, 10, id="cap"),
    ],
)
def test_solutions_per_batch(tests: int, pairs: int, cap: int, expected: int) -> None:
    assert solutions_per_batch(tests, pairs, cap) == expected


@pytest.mark.parametrize(("tests", "pairs", "cap"), [(-1, 10, 10), (1, 0, 10), (1, 10, 0)])
def test_solutions_per_batch_rejects_nonsense(tests: int, pairs: int, cap: int) -> None:
    with pytest.raises(ValueError, match="bad batch sizing"):
        solutions_per_batch(tests, pairs, cap)


@pytest.mark.parametrize(
    ("count", "per_batch", "sizes"),
    [
        (0, 5, []),
        (5, 5, [5]),
        (6, 5, [3, 3]),
        (75, 20, [19, 19, 19, 18]),
        (100, 71, [50, 50]),
        (3, 1, [1, 1, 1]),
        (3, 10, [3]),
    ],
)
def test_split_batches_even_sizes(count: int, per_batch: int, sizes: list[int]) -> None:
    ids = list(range(100, 100 + count))
    batches = split_batches(ids, per_batch)
    assert [len(b) for b in batches] == sizes
    assert [i for batch in batches for i in batch] == ids
    assert all(len(b) <= per_batch for b in batches)


def test_split_batches_rejects_zero() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_batches([1], 0)
