"""Round-based test allocation (shared/core/allocation_rounds.py) on hand-made matrices."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from shared.core.allocation_rounds import (
    ALLOCATIONS,
    Allocation,
    OrderedProblem,
    ProblemState,
    Seen,
    at_random,
    codet_pick,
    consensus_estimate,
    disagree,
    equal,
    flip,
    gold,
    majority_pick,
    margin,
    paper,
    pick_flip_rate,
    pick_margin,
    pick_moves,
    picks_disagree,
    proportional,
    round_units,
    scarce,
    separating_tests,
    settled,
    simulate,
    simulate_draw,
    starved,
)
from shared.core.analysis_types import ProblemMatrix
from shared.core.strategies import Candidate, coderm_majority_vote, codet_dual_agreement


def problem(
    task: str,
    candidates: Sequence[tuple[tuple[int, ...], bool]],
    sample_tests: Sequence[tuple[int, ...]],
) -> OrderedProblem:
    """Candidates as (passed test ids, correct), solution ids by position."""
    weights = Counter(t for s in sample_tests for t in s)
    matrix = ProblemMatrix(
        problem_id=hash(task) % 1000,
        task_id=task,
        candidates=tuple(
            Candidate(i, frozenset(passed), ok) for i, (passed, ok) in enumerate(candidates)
        ),
        test_weights=dict(weights),
        test_samples=len(sample_tests),
    )
    return OrderedProblem(matrix, tuple(tuple(s) for s in sample_tests))


def small_set() -> list[OrderedProblem]:
    """Four problems of six test samples each, some yielding nothing, with disagreeing
    solutions, so every allocation has something to decide."""
    rng = random.Random(7)
    out = []
    for p in range(4):
        tests = list(range(10 * p, 10 * p + 5))
        samples = [tuple(rng.sample(tests, rng.randint(0, 2))) for _ in range(6)]
        used = sorted({t for s in samples for t in s})
        cands = [
            (tuple(t for t in used if rng.random() < 0.5), rng.random() < 0.4) for _ in range(8)
        ]
        out.append(problem(f"P/{p}", cands, samples))
    return out


def test_ordered_problem_checks_weights() -> None:
    with pytest.raises(ValueError, match="disagree"):
        OrderedProblem(ProblemMatrix(1, "X", (Candidate(1),), {5: 2}, 2), ((5,), ()))
    with pytest.raises(ValueError, match="one entry"):
        OrderedProblem(ProblemMatrix(1, "X", (Candidate(1),), {5: 1}, 3), ((5,), ()))


def test_round_units() -> None:
    assert round_units(0, 10) == 10
    assert round_units(70, 10) == 10  # 7 a problem: 7 // 4 = 1
    assert round_units(80, 10) == 20
    assert round_units(320, 10) == 80
    assert round_units(160, 10, per_doubling=2) == 80


@pytest.mark.parametrize("name", list(ALLOCATIONS))
@pytest.mark.parametrize("first_round", [0, 1, 2])
def test_budget_spent_exactly_never_exceeded(name: str, first_round: int) -> None:
    problems = small_set()
    budgets = (1, 2, 3, 5)
    results = simulate_draw(problems, ALLOCATIONS[name], budgets, first_round, draw=3, seed=1)
    assert [r.budget for r in results] == [1, 2, 3, 5]
    for r, b in zip(results, budgets, strict=True):
        assert sum(r.tests) == b * len(problems)
        assert all(0 <= t <= 6 for t in r.tests)
    # past every problem's test samples: everything revealed, nothing more
    (full,) = simulate_draw(problems, ALLOCATIONS[name], (9,), first_round, draw=3, seed=1)
    assert full.tests == (6, 6, 6, 6)


def _recording(states_seen: list[list[ProblemState]], inner: str = "flip") -> Allocation:
    def rule(states: Sequence[ProblemState], units: int) -> list[int]:
        states_seen.append(list(states))
        return ALLOCATIONS[inner](states, units)

    return rule


def test_no_test_sample_revealed_twice() -> None:
    problems = small_set()
    rounds: list[list[ProblemState]] = []
    simulate_draw(problems, _recording(rounds), (6,), 1, draw=0, seed=0)
    assert len(rounds) > 2
    for earlier, later in itertools.pairwise(rounds):
        for a, b in zip(earlier, later, strict=True):
            assert a.revealed == len(a.units) <= a.cap
            # a later round extends the revealed samples, never repeats or reorders them
            assert b.units[: a.revealed] == a.units
    for states in rounds:
        for p, s in zip(problems, states, strict=True):
            # each revealed unit is a distinct test sample: the slot bits never overlap
            slots = 0
            for _, bits in s.units:
                assert slots & bits == 0
                slots |= bits
            assert s.cap == len(p.sample_tests)


def test_a_rule_that_overspends_is_refused() -> None:
    def greedy_cheat(states: Sequence[ProblemState], units: int) -> list[int]:
        return [s.room for s in states]

    def short(states: Sequence[ProblemState], units: int) -> list[int]:
        return [0] * len(states)

    for rule in (greedy_cheat, short):
        with pytest.raises(ValueError, match="granted"):
            simulate_draw(small_set(), rule, (4,), 1)


def _fixed_m(p: OrderedProblem, m: int, draw: int, seed: int) -> tuple[float, float]:
    """Majority voting and CodeT on the first m test samples of the draw's order,
    through the reference strategies (not the bit code)."""
    order = random.Random(f"{seed}:rounds:{p.matrix.task_id}:{draw}").sample(
        range(len(p.sample_tests)), len(p.sample_tests)
    )
    weights = Counter(t for k in order[:m] for t in p.sample_tests[k])
    cands = [
        Candidate(c.solution_id, c.passed & frozenset(weights), c.correct)
        for c in p.matrix.candidates
    ]
    return coderm_majority_vote(cands).score, codet_dual_agreement(cands, weights).score


@pytest.mark.parametrize("first_round", [1, 2])
def test_equal_is_the_fixed_m_result(first_round: int) -> None:
    problems = small_set()
    for draw in range(3):
        results = simulate_draw(problems, equal, (1, 2, 4, 6), first_round, draw, seed=5)
        for r in results:
            m = int(r.budget)
            assert r.tests == (m,) * len(problems)
            expected = [_fixed_m(p, m, draw, 5) for p in problems]
            for got, want in zip(r.per_problem, expected, strict=True):
                assert got == pytest.approx(want)
            assert r.accuracy == pytest.approx(
                tuple(sum(e[s] for e in expected) / len(problems) for s in range(2))
            )


def test_deterministic_under_a_seed() -> None:
    problems = small_set()
    a = simulate(problems, ALLOCATIONS, (1, 2, 4), 1, draws=3, seed=11)
    b = simulate(problems, ALLOCATIONS, (1, 2, 4), 1, draws=3, seed=11)
    assert a == b
    orders = [
        simulate_draw(problems, equal, (2,), 1, draw=0, seed=s)[0].per_problem for s in range(6)
    ]
    assert len(set(orders)) > 1  # the seed does change the draws
    equal_points = [p for p in a if p.allocation == "equal"]
    assert all(p.delta == (0.0, 0.0) for p in equal_points)
    assert [p.budget for p in equal_points] == [1, 2, 4]
    with pytest.raises(ValueError, match="equal"):
        simulate(problems, {"flip": flip}, (1,), 1)


# --- each allocation's documented behaviour ---------------------------------------


def state(
    revealed: int,
    cap: int,
    units: Sequence[tuple[int, int]] = (),
    seen: Sequence[Seen] = (Seen(0, 0, 10),),
    pass_rate: float = 0.0,
) -> ProblemState:
    return ProblemState(revealed, cap, tuple(units), tuple(seen), pass_rate)


def test_equal_fills_the_fewest_first() -> None:
    states = [state(3, 10), state(1, 10), state(1, 2), state(0, 0)]
    # problems 1 and 2 (at 1), 2 is then full; 1 (at 2); then 0 and 1 tie at 3: 0
    assert equal(states, 4) == [1, 2, 1, 0]
    assert equal(states, 100) == [7, 9, 1, 0]  # capped by the room
    with pytest.raises(ValueError):
        equal(states, -1)


def test_gold_follows_the_true_pass_rate() -> None:
    # gains lambda (1 - lambda)^b: 0.5 * 0.5^1 = 0.25 vs 0 for an unsolvable problem
    states = [state(1, 10, pass_rate=0.5), state(1, 10, pass_rate=0.0)]
    assert gold(states, 3) == [3, 0]
    # a solved problem (lambda 1) gains nothing after its first test
    states = [state(1, 10, pass_rate=1.0), state(1, 10, pass_rate=0.2)]
    assert gold(states, 2) == [0, 2]


# one revealed test sample yielding test bit 0 (slot bit 0)
ONE_TEST = ((1, 1),)


def test_paper_sends_tests_where_the_consensus_is_large() -> None:
    agreed = state(1, 10, ONE_TEST, (Seen(1, 1, 6), Seen(0, 0, 4)))
    nothing = state(1, 10, ONE_TEST, (Seen(0, 0, 10),))
    assert consensus_estimate(agreed) == pytest.approx(0.6)
    assert consensus_estimate(nothing) == 0.0
    # lambda-hat 0.6 vs 0: the rule sends both units to the agreed problem
    assert paper([agreed, nothing], 2) == [2, 0]


def test_margin_prefers_a_contested_pick() -> None:
    # two sets of 4 samples pass one test each: tied top -> margin 1
    tied = state(2, 10, ((1, 1), (2, 2)), (Seen(1, 1, 4), Seen(2, 2, 4), Seen(0, 0, 2)))
    clear = state(1, 10, ONE_TEST, (Seen(1, 1, 9), Seen(0, 0, 1)))
    assert pick_margin(tied) == 1.0
    assert pick_margin(clear) == 0.0
    assert margin([tied, clear], 3) == [3, 0]
    # nothing contested anywhere: the units go as equal's
    assert margin([clear, clear], 2) == [1, 1]


def test_flip_rate_by_jackknife() -> None:
    # two test samples, each passed by a different half: dropping either flips both picks
    split = state(2, 10, ((1, 1), (2, 2)), (Seen(1, 1, 5), Seen(2, 2, 5)))
    assert pick_flip_rate(split) == pytest.approx((4 + 1) / (4 + 2))
    # everyone passes both tests: no sample moves a pick
    settled = state(2, 10, ((1, 1), (2, 2)), (Seen(3, 3, 10),))
    assert pick_flip_rate(settled) == pytest.approx(1 / 6)
    # before any test: the prior 1/2
    assert pick_flip_rate(state(0, 10)) == pytest.approx(0.5)
    # units in proportion: 5/6 : 1/6 -> 5 : 1
    assert flip([split, settled], 6) == [5, 1]


def test_settled_favours_a_pick_no_test_moves() -> None:
    split = state(2, 10, ((1, 1), (2, 2)), (Seen(1, 1, 5), Seen(2, 2, 5)))
    settled_one = state(2, 10, ((1, 1), (2, 2)), (Seen(3, 3, 10),))
    assert pick_moves(split) == 4
    assert pick_moves(settled_one) == 0
    assert pick_moves(state(1, 10, ONE_TEST, (Seen(1, 1, 10),))) == 0  # one sample: none
    # 1 : 0.3 by D'Hondt: 1, 1/2, 1/3 > 0.3, then 0.3 vs 1/4 ...
    assert settled([settled_one, split], 4) == [3, 1]
    assert settled([settled_one, split], 13) == [8, 5]  # room 8 each


def test_disagree_triples_the_share_of_contested_problems() -> None:
    # majority keeps the one sample passing both tests; CodeT weighs 1 slot x sqrt(9)
    # = 3 for the nine passing test 1 against 2 slots x sqrt(1) = 2
    contested = state(2, 20, ((1, 1), (2, 2)), (Seen(1, 1, 9), Seen(3, 3, 1)))
    assert majority_pick(contested.seen, 3) == frozenset({3})
    assert codet_pick(contested.seen, 3, 3) == frozenset({1})
    assert picks_disagree(contested)
    quiet = state(2, 20, ((1, 1), (2, 2)), (Seen(3, 3, 10),))
    assert not picks_disagree(quiet)
    # nothing passes: both pick at random among all samples
    failing = state(2, 20, ((1, 1), (2, 2)), (Seen(0, 0, 10),))
    assert not picks_disagree(failing)
    assert disagree([contested, quiet], 8) == [6, 2]


def test_starved_triples_the_share_of_problems_at_the_random_pick() -> None:
    no_test = state(3, 20, ((0, 0),) * 3, (Seen(0, 0, 10),))
    failing = state(2, 20, ((1, 1), (2, 2)), (Seen(0, 0, 10),))
    split = state(2, 20, ((1, 1), (2, 2)), (Seen(1, 1, 5), Seen(0, 0, 5)))
    assert at_random(no_test)
    assert at_random(failing)
    assert not at_random(split)
    assert starved([split, no_test, failing], 14) == [2, 6, 6]


def test_scarce_favours_problems_with_few_separating_tests() -> None:
    # tests 1 and 2 revealed, only test 1 passed by some sample: one separating test
    one = state(2, 40, ((1, 1), (2, 2)), (Seen(1, 1, 5), Seen(0, 0, 5)))
    # three tests, every one passed by someone
    three = state(2, 40, ((3, 3), (4, 12)), (Seen(3, 3, 5), Seen(4, 12, 5)))
    none = state(2, 40, ((0, 0), (0, 0)), (Seen(0, 0, 10),))
    assert [separating_tests(s) for s in (one, three, none)] == [1, 3, 0]
    # weights 1/sqrt(2), 1/2, 1: D'Hondt gives the most to the problem without one
    grants = scarce([one, three, none], 20)
    assert sum(grants) == 20
    assert grants[2] > grants[0] > grants[1]


def test_codet_pick_without_passes_is_empty() -> None:
    assert codet_pick((Seen(0, 0, 3),), 1, 1) == frozenset()
    assert majority_pick((Seen(0, 0, 3),), 1) == frozenset({0})


def test_proportional_dhondt_and_rooms() -> None:
    states = [state(0, 10), state(0, 1), state(0, 10)]
    # D'Hondt on 2 : 1 : 0: 0 (2), 0 (1 ties 1, lower index), 1 (1 > 2/3, now full),
    # then 0; a zero priority gets nothing while a positive one has room
    assert proportional(states, 6, [2.0, 1.0, 0.0]) == [5, 1, 0]
    # what the positive priorities cannot take goes as equal's
    small = [state(0, 2), state(0, 1), state(0, 10)]
    assert proportional(small, 6, [2.0, 1.0, 0.0]) == [2, 1, 3]
    assert proportional(states, 0, [1.0, 1.0, 1.0]) == [0, 0, 0]
