"""A problem's pass/fail matrix as bitmasks, and every strategy's pass@1 on a draw of
its tests (pure, no I/O): the fast path of the scaling curves and allocations.

A solution sample's passed tests are one ``int`` over the problem's unique tests and
one over its test *slots* (see :data:`~shared.core.analysis_types.TestDrawMode`);
samples with one passed set are grouped before any draw. The strategies are those of
:mod:`shared.core.strategies`, with the same rules (and the same float expression
for CodeT's scores, so the same exact ties); the unit tests check that both agree.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.core.analysis_types import ProblemMatrix, TestDrawMode

STRATEGIES = ("vanilla", "oracle", "coderm_majority", "codet", "first_max", "mbr_exec")

Scores = tuple[float, float, float, float, float, float]
"""One draw's pass@1 of a problem, in the order of :data:`STRATEGIES`."""

Draw = tuple[int, int]
"""Drawn tests: ``(unique-test bits, slot bits)``."""


@dataclass(frozen=True)
class Group:
    """Samples with one passed set: its test and slot bits, its sample and correct
    counts, and the lowest sample position in it with that sample's correctness."""

    tests: int
    slots: int
    samples: int
    correct: int
    first: int
    first_correct: bool


@dataclass(frozen=True)
class BitMatrix:
    """A problem in bit form.

    ``slot_test[j]``: the unique-test bit (index in sorted test ids) that slot j holds,
    or -1 for an empty slot; per sample, its passed tests as test bits and as slot
    bits, and its correctness.
    """

    problem: ProblemMatrix
    slot_test: tuple[int, ...]
    test_count: int
    sample_tests: tuple[int, ...]
    sample_slots: tuple[int, ...]
    sample_correct: tuple[bool, ...]

    @classmethod
    def of(cls, problem: ProblemMatrix, mode: TestDrawMode) -> BitMatrix:
        """Slots in test-id order: in ``"coderm"`` mode one a unique test, in
        ``"samples"`` mode ``test_weights[t]`` for test t; then empty slots up to
        ``test_samples``. Passed ids outside ``test_weights`` are ignored."""
        tests = problem.tests
        bit = {t: b for b, t in enumerate(tests)}
        multiplicity = [1 if mode == "coderm" else problem.test_weights[t] for t in tests]
        slot_test = [b for b, w in enumerate(multiplicity) for _ in range(w)]
        slot_test += [-1] * max(0, problem.test_samples - len(slot_test))
        test_slots = [0] * len(tests)
        for j, b in enumerate(slot_test):
            if b >= 0:
                test_slots[b] |= 1 << j
        known = [[bit[t] for t in cand.passed if t in bit] for cand in problem.candidates]
        return cls(
            problem,
            tuple(slot_test),
            len(tests),
            tuple(sum(1 << b for b in bits) for bits in known),
            tuple(sum(test_slots[b] for b in bits) for bits in known),
            tuple(c.correct for c in problem.candidates),
        )

    @property
    def slots(self) -> int:
        """The number of test slots S."""
        return len(self.slot_test)

    @property
    def samples(self) -> int:
        """The number of solution samples N."""
        return len(self.sample_tests)

    @property
    def everything(self) -> Draw:
        """The draw of every slot."""
        return (1 << self.test_count) - 1, (1 << self.slots) - 1

    def groups(self, positions: Iterable[int] | None = None) -> list[Group]:
        """Group the samples at ``positions`` (ascending; default all) by passed set."""
        acc: dict[int, list[int]] = {}
        for i in range(self.samples) if positions is None else positions:
            mask, ok = self.sample_tests[i], int(self.sample_correct[i])
            entry = acc.get(mask)
            if entry is None:
                acc[mask] = [1, ok, i, ok]
            else:
                entry[0] += 1
                entry[1] += ok
        return [
            Group(mask, self.sample_slots[first], samples, correct, first, bool(first_ok))
            for mask, (samples, correct, first, first_ok) in acc.items()
        ]

    def draw(self, slots: Iterable[int]) -> Draw:
        """The draw made of the given slot indices."""
        drawn_tests = drawn_slots = 0
        for j in slots:
            drawn_slots |= 1 << j
            b = self.slot_test[j]
            if b >= 0:
                drawn_tests |= 1 << b
        return drawn_tests, drawn_slots

    def random_draw(self, m: int, rng: random.Random) -> Draw:
        """``rng.sample(range(S), m)`` slots (as CodeRM's shuffled ``ut_ids[:ut_num]``)."""
        return self.draw(rng.sample(range(self.slots), m))


def _merge(groups: Sequence[Group], draw: Draw) -> dict[int, list[int]]:
    """Groups seen through the draw, merged by drawn passed set:
    ``drawn set -> [samples, correct, first, first_correct, drawn slot count]``."""
    drawn_tests, drawn_slots = draw
    merged: dict[int, list[int]] = {}
    for g in groups:
        p = g.tests & drawn_tests
        entry = merged.get(p)
        if entry is None:
            weight = (g.slots & drawn_slots).bit_count()
            merged[p] = [g.samples, g.correct, g.first, int(g.first_correct), weight]
        else:
            entry[0] += g.samples
            entry[1] += g.correct
            if g.first < entry[2]:
                entry[2], entry[3] = g.first, int(g.first_correct)
    return merged


def _codet_top(merged: dict[int, list[int]]) -> list[list[int]] | None:
    """The consensus sets tied at CodeT's top score, ``None`` when nothing passes."""
    ranked = [(e[4] * math.sqrt(e[0]), e) for p, e in merged.items() if p]
    if not ranked:
        return None
    best = max(score for score, _ in ranked)
    return [e for score, e in ranked if score == best]


def score_draw(groups: Sequence[Group], draw: Draw) -> Scores:
    """Every strategy's pass@1 on the samples of ``groups`` with the drawn tests.

    Majority voting, first-max and MBR-Exec count a drawn test once; CodeT weighs it
    by its drawn slots. Same rules as ``vanilla``, ``oracle``, ``coderm_majority_vote``,
    ``codet_dual_agreement``, ``first_max`` and ``mbr_exec`` in
    :mod:`shared.core.strategies`. MBR-Exec: the merged entries are exactly the
    classes of equal drawn passed sets, so the pick is uniform over the samples of the
    entries with the most samples, ``score = sum(correct) / sum(samples)`` over them.
    """
    merged = _merge(groups, draw)
    n = sum(e[0] for e in merged.values())
    c = sum(e[1] for e in merged.values())
    top = max(p.bit_count() for p in merged)
    leaders = [e for p, e in merged.items() if p.bit_count() == top]
    consistency = max(e[0] for e in leaders)
    kept = [e for e in leaders if e[0] == consistency]
    majority = sum(e[1] for e in kept) / sum(e[0] for e in kept)
    first = float(min((e[2], e[3]) for e in leaders)[1])
    tied = _codet_top(merged)
    codet = c / n if tied is None else sum(e[1] for e in tied) / sum(e[0] for e in tied)
    agreement = max(e[0] for e in merged.values())
    agreeing = [e for e in merged.values() if e[0] == agreement]
    mbr = sum(e[1] for e in agreeing) / sum(e[0] for e in agreeing)
    return (c / n, float(c > 0), majority, codet, first, mbr)


def consensus_share(groups: Sequence[Group], draw: Draw) -> float:
    """Share of the samples in CodeT's top rank (sets tied at the top merged) with the
    drawn tests; 0 when no sample passes a drawn test."""
    merged = _merge(groups, draw)
    tied = _codet_top(merged)
    if tied is None:
        return 0.0
    return sum(e[0] for e in tied) / sum(e[0] for e in merged.values())
