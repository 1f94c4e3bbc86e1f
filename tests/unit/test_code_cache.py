"""Tests of services/executor/code_cache.py (the executor's per-process test-code cache)."""

from __future__ import annotations

from services.executor.code_cache import UnitTestCache, cache_key
from services.executor.store import CodeItem


def items(*codes: str) -> list[CodeItem]:
    return [CodeItem(i, code) for i, code in enumerate(codes)]


def test_key_is_problem_and_sorted_distinct_ids() -> None:
    assert cache_key(7, [3, 1, 3, 2]) == (7, (1, 2, 3))
    assert cache_key(7, [1, 2]) != cache_key(8, [1, 2])
    assert cache_key(7, [1, 2]) != cache_key(7, [1, 2, 3])


def test_hit_after_put_and_counts() -> None:
    cache = UnitTestCache(max_chars=100)
    key = cache_key(1, [0, 1])
    assert cache.get(key) is None
    cache.put(key, items("aa", "bbb"))
    assert cache.get(key) == tuple(items("aa", "bbb"))
    assert (cache.hits, cache.misses, cache.chars, len(cache)) == (1, 1, 5, 1)


def test_least_recently_used_is_evicted_beyond_the_bound() -> None:
    cache = UnitTestCache(max_chars=10)
    first, second, third = cache_key(1, [1]), cache_key(2, [1]), cache_key(3, [1])
    cache.put(first, items("x" * 4))
    cache.put(second, items("y" * 4))
    assert cache.get(first) is not None  # first is now the most recent
    cache.put(third, items("z" * 4))
    assert cache.get(second) is None
    assert cache.get(first) is not None and cache.get(third) is not None
    assert cache.chars == 8


def test_oversized_set_is_not_kept_and_replacing_recounts() -> None:
    cache = UnitTestCache(max_chars=10)
    key = cache_key(1, [1])
    cache.put(key, items("x" * 4))
    cache.put(key, items("x" * 6))
    assert cache.chars == 6 and len(cache) == 1
    cache.put(cache_key(2, [1]), items("y" * 11))
    assert cache.get(cache_key(2, [1])) is None
    assert cache.chars == 6


def test_zero_bound_keeps_nothing() -> None:
    cache = UnitTestCache(max_chars=0)
    cache.put(cache_key(1, [1]), items("x"))
    assert len(cache) == 0
