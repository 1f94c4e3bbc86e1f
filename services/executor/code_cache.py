"""A bounded, per-process cache of a problem's unit-test code (no I/O).

Every batch of a problem runs the same tests, and unit tests are content-addressed
(an id never changes its code), so an executor keeps the code it loaded for a
problem's test set and reuses it for the problem's next batches. Keyed by (problem,
test ids), so a test set that grows (more tests generated later) is a new entry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from services.executor.store import CodeItem

TestsKey: TypeAlias = tuple[int, tuple[int, ...]]


def cache_key(problem_id: int, test_ids: Sequence[int]) -> TestsKey:
    """The cache key of a problem's test set: the problem and its sorted distinct test ids."""
    return problem_id, tuple(sorted(set(test_ids)))


@dataclass
class UnitTestCache:
    """Least-recently-used test sets, holding at most ``max_chars`` characters of code.

    A test set larger than the bound is not kept. ``hits`` and ``misses`` count lookups.
    """

    max_chars: int
    hits: int = 0
    misses: int = 0
    _entries: OrderedDict[TestsKey, tuple[CodeItem, ...]] = field(default_factory=OrderedDict)
    _chars: int = 0

    @property
    def chars(self) -> int:
        """Characters of code held now."""
        return self._chars

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: TestsKey) -> tuple[CodeItem, ...] | None:
        """The cached test set, marked as recently used; None on a miss."""
        items = self._entries.get(key)
        if items is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return items

    def put(self, key: TestsKey, items: Sequence[CodeItem]) -> None:
        """Keep a test set, evicting the least recently used ones beyond the bound."""
        size = sum(len(item.code) for item in items)
        old = self._entries.pop(key, None)
        if old is not None:
            self._chars -= sum(len(item.code) for item in old)
        if size > self.max_chars:
            return
        self._entries[key] = tuple(items)
        self._chars += size
        while self._chars > self.max_chars:
            _, evicted = self._entries.popitem(last=False)
            self._chars -= sum(len(item.code) for item in evicted)
