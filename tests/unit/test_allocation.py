"""Dynamic unit-test allocation (CodeRM section 3.2) on hand-computed tables."""

from __future__ import annotations

import pytest

from shared.core.allocation import (
    allocation_curve,
    equal_allocation,
    greedy_allocation,
    marginal_gain,
)
from shared.core.analysis_types import ProblemMatrix
from shared.core.strategies import Candidate


def c(sid: int | None, passed: tuple[int, ...] = (), correct: bool = False) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


@pytest.mark.parametrize(
    ("lam", "b", "gain"),
    [(0.5, 0, 0.5), (0.5, 2, 0.125), (0.9, 1, 0.09), (0.0, 0, 0.0), (1.0, 0, 1.0), (1.0, 1, 0.0)],
)
def test_marginal_gain(lam: float, b: int, gain: float) -> None:
    assert marginal_gain(lam, b) == pytest.approx(gain)
    assert marginal_gain(lam, b) == pytest.approx((1 - (1 - lam) ** (b + 1)) - (1 - (1 - lam) ** b))


@pytest.mark.parametrize(
    ("lambdas", "budget", "start", "caps", "counts"),
    [
        # gains 0.5, 0.9, 0 -> problem 1; then 0.5 vs 0.09 -> 0; then 0.25 vs 0.09 -> 0
        ([0.5, 0.9, 0.0], 3, None, None, [2, 1, 0]),
        # equal gains: the lower index first
        ([0.5, 0.5], 3, None, None, [2, 1]),
        # a capped problem gets no more
        ([0.9, 0.1], 3, None, [1, 5], [1, 2]),
        # from a start: 0.5 * 0.25 = 0.125 < 0.5
        ([0.5, 0.5], 1, [2, 0], None, [2, 1]),
        # a solved problem (lambda 1) gains nothing after its first unit
        ([1.0, 0.2], 3, None, None, [1, 2]),
        # all gains 0: every unit to the lowest index (the rule, taken literally)
        ([0.0, 0.0], 3, None, None, [3, 0]),
        # more budget than caps: stops when everyone is capped
        ([0.3, 0.6], 9, None, [1, 2], [1, 2]),
        ([0.3], 0, None, None, [0]),
        ([], 4, None, None, []),
    ],
)
def test_greedy_allocation(
    lambdas: list[float],
    budget: int,
    start: list[int] | None,
    caps: list[int] | None,
    counts: list[int],
) -> None:
    assert greedy_allocation(lambdas, budget, start, caps) == counts


@pytest.mark.parametrize(
    ("lambdas", "budget", "start", "caps"),
    [
        ([1.5], 1, None, None),
        ([0.5], -1, None, None),
        ([0.5], 1, [0, 0], None),
        ([0.5], 1, None, [-1]),
    ],
)
def test_greedy_allocation_rejects_bad_input(
    lambdas: list[float], budget: int, start: list[int] | None, caps: list[int] | None
) -> None:
    with pytest.raises(ValueError):
        greedy_allocation(lambdas, budget, start, caps)


@pytest.mark.parametrize(
    ("problems", "budget", "caps", "counts"),
    [
        (3, 7, None, [3, 2, 2]),
        (3, 6, None, [2, 2, 2]),
        (3, 7, [1, 5, 5], [1, 3, 3]),
        (2, 9, [1, 2], [1, 2]),
        (2, 0, None, [0, 0]),
    ],
)
def test_equal_allocation(
    problems: int, budget: int, caps: list[int] | None, counts: list[int]
) -> None:
    assert equal_allocation(problems, budget, caps) == counts


# EASY (lambda 1/2): with any test the correct solution alone passes -> 1, none -> 1/2.
EASY = ProblemMatrix(1, "T/1", (c(1, (1, 2), True), c(2)), {1: 1, 2: 1}, 2)
# HARD (lambda 1/4): any test is passed by the wrong solution alone -> 0, none -> 1/4.
HARD = ProblemMatrix(2, "T/2", (c(3, (3, 4)), c(4, (), True), c(5), c(6)), {3: 1, 4: 1}, 2)


def test_allocation_curve_hand_computed() -> None:
    curve = allocation_curve([EASY, HARD], budgets_per_problem=(0, 1, 2), probe=1, samples=3)
    got = {(p.rule, p.per_problem): p.accuracy for p in curve}
    assert got == pytest.approx(
        {
            # no tests: the random pick, (1/2 + 1/4) / 2
            ("equal", 0.0): 0.375,
            ("gold", 0.0): 0.375,
            # equal [1, 1]: (1 + 0) / 2
            ("equal", 1.0): 0.5,
            # gold: gains 1/2 vs 1/4 -> EASY; then 1/4 vs 1/4 -> EASY: [2, 0]
            ("gold", 1.0): (1 + 0.25) / 2,
            # estimated: the probe unit each, nothing left: [1, 1]
            ("estimated", 1.0): 0.5,
            ("equal", 2.0): 0.5,
            # EASY capped at 2, the rest to HARD: [2, 2]
            ("gold", 2.0): 0.5,
            ("estimated", 2.0): 0.5,
        }
    )
    assert {(p.budget, p.problems) for p in curve if p.per_problem == 2.0} == {(4, 2)}


def test_allocation_without_probe_estimates_nothing() -> None:
    # no probe tests: every lambda-hat is 0, all gains tie, the units go to index 0
    curve = allocation_curve([EASY, HARD], budgets_per_problem=(1,), probe=0, samples=2)
    got = {p.rule: p.accuracy for p in curve}
    assert got == pytest.approx({"equal": 0.5, "gold": 0.625, "estimated": 0.625})


def test_allocation_curve_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        allocation_curve([])
    with pytest.raises(ValueError):
        allocation_curve([EASY], samples=0)
