"""Dynamic unit-test scaling in rounds, simulated on complete matrices (pure, no I/O).

A live loop with a test budget works in rounds: every problem first gets ``M0`` test
samples; after each round an *allocation* looks at what the executions so far show and
decides how many more test samples each problem gets from what is left of the budget;
the picks are recomputed from the tests revealed so far; this repeats until the budget
(average test samples a problem x problems) is spent. :func:`simulate_draw` replays
that on a finished run's full matrix: a problem's test samples are revealed in their
generation order (one draw = one seeded random order of the problem's test samples:
the samples are independent draws from the test model, so every order is as likely to
have been generated as the stored one), and the accuracy of CodeRM majority voting and
CodeT dual agreement is read whenever the spent budget reaches one of the budgets
asked for. :func:`simulate` repeats it over seeded draws (a bootstrap over generation
orders) for the error bars.

The unit is one *test sample* (one unit-test completion), the unit a test model is
paid for: in a CodeT assert run it reveals every assert it yields (none, or up to
five), in a unittest run its one class. The allocations are pure functions of the
:class:`ProblemState` of every problem (what a live loop knows: the revealed samples'
verdicts, grouped; never a label, except the ``pass_rate`` that ``gold`` reads for
analysis) and of the round's units; each returns every problem's grant.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from shared.core.allocation import greedy_allocation
from shared.core.analysis_types import ProblemMatrix
from shared.core.bitmatrix import BitMatrix, Draw, Group, score_draw

ROUND_BUDGETS = (1, 2, 4, 8, 16, 32, 64)
"""Average test samples a problem at which the simulation reads accuracy."""

SIM_STRATEGIES = ("coderm_majority", "codet")
"""The strategies whose best-of-N accuracy the simulation reports."""

_COLUMNS = (2, 3)  # their positions in bitmatrix.STRATEGIES


@dataclass(frozen=True)
class OrderedProblem:
    """A problem's complete matrix with the tests each test sample yields.

    ``sample_tests[k]``: the unique test ids test sample k yields, k in generation
    order (empty for a sample that yields no test). Every id of ``matrix.test_weights``
    occurs as often as its weight, and there is one entry a test sample.
    """

    matrix: ProblemMatrix
    sample_tests: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        counts = Counter(t for sample in self.sample_tests for t in sample)
        if dict(counts) != dict(self.matrix.test_weights):
            raise ValueError(f"{self.matrix.task_id}: test samples disagree with the weights")
        if len(self.sample_tests) != self.matrix.test_samples:
            raise ValueError(f"{self.matrix.task_id}: one entry a test sample needed")


@dataclass(frozen=True)
class Seen:
    """Solution samples with one passed set over the revealed tests: the revealed
    unique tests they pass (bits), the revealed test occurrences they pass (slot bits,
    CodeT's weight) and how many samples they are."""

    tests: int
    slots: int
    samples: int


@dataclass(frozen=True)
class ProblemState:
    """What a live loop knows about a problem after a round.

    ``revealed``: test samples run so far; ``cap``: test samples it can have in all;
    ``units``: each revealed test sample's ``(unique-test bits, slot bits)``, in
    generation order; ``seen``: its solution samples grouped by passed set over the
    revealed tests (:class:`Seen`); ``pass_rate``: the true share of correct samples,
    for the ``gold`` analysis only (a live loop does not have it); ``predicted``: a
    pass rate predicted before any test (the difficulty probe's), which ``paper`` then
    uses instead of its estimate from the executions.
    """

    revealed: int
    cap: int
    units: tuple[Draw, ...]
    seen: tuple[Seen, ...]
    pass_rate: float
    predicted: float | None = None

    @property
    def room(self) -> int:
        """Test samples it can still get."""
        return self.cap - self.revealed


Allocation = Callable[[Sequence[ProblemState], int], list[int]]
"""``(states, units) -> grants``: every grant in ``[0, room]``, their sum
``min(units, total room)``."""


# --- the picks as a live loop sees them (no labels) -------------------------------


def _merge(seen: Sequence[Seen], tests: int) -> dict[int, int]:
    """``seen`` viewed through the revealed tests ``tests``: drawn passed set ->
    samples."""
    merged: dict[int, int] = {}
    for s in seen:
        key = s.tests & tests
        merged[key] = merged.get(key, 0) + s.samples
    return merged


def _slot_count(seen: Sequence[Seen], tests: int, slots: int) -> dict[int, int]:
    return {s.tests & tests: (s.slots & slots).bit_count() for s in seen}


def majority_pick(seen: Sequence[Seen], tests: int) -> frozenset[int]:
    """The sets CodeRM's majority voting keeps with the revealed ``tests``: the drawn
    passed sets with the most tests, then the most samples; returned as the drawn
    passed sets (keys)."""
    merged = _merge(seen, tests)
    top = max(key.bit_count() for key in merged)
    leaders = {key: n for key, n in merged.items() if key.bit_count() == top}
    most = max(leaders.values())
    return frozenset(key for key, n in leaders.items() if n == most)


def codet_pick(seen: Sequence[Seen], tests: int, slots: int) -> frozenset[int]:
    """The consensus sets at CodeT's top score (drawn passed slots x sqrt(samples),
    ties merged) with the revealed ``tests``/``slots``; empty when no sample passes a
    revealed test (CodeT then picks at random)."""
    merged = _merge(seen, tests)
    weight = _slot_count(seen, tests, slots)
    ranked = {key: weight[key] * math.sqrt(n) for key, n in merged.items() if key}
    if not ranked:
        return frozenset()
    best = max(ranked.values())
    return frozenset(key for key, score in ranked.items() if score == best)


def _members(seen: Sequence[Seen], tests: int, keys: frozenset[int]) -> frozenset[int]:
    """The seen groups (indices) whose drawn passed set is among ``keys``; all of them
    for no keys (CodeT's random pick)."""
    if not keys:
        return frozenset(range(len(seen)))
    return frozenset(k for k, s in enumerate(seen) if s.tests & tests in keys)


def _revealed(state: ProblemState, skip: int = -1) -> Draw:
    tests = slots = 0
    for k, (t, s) in enumerate(state.units):
        if k != skip:
            tests |= t
            slots |= s
    return tests, slots


def consensus_estimate(state: ProblemState) -> float:
    """lambda-hat of a problem from its revealed tests: the share of its samples in
    CodeT's top consensus set (0 when no sample passes a revealed test), the
    execution-based estimate the existing replay feeds the paper's rule."""
    tests, slots = _revealed(state)
    total = sum(s.samples for s in state.seen)
    keys = codet_pick(state.seen, tests, slots)
    if not keys or not total:
        return 0.0
    return sum(s.samples for s in state.seen if s.tests & tests in keys) / total


def pick_moves(state: ProblemState) -> int:
    """How many of the ``2 x revealed`` (test sample, strategy) pairs move the pick:
    for each revealed test sample, the picks of majority voting and CodeT without it
    are compared with the picks with every revealed sample (as sets of solution
    samples; CodeT's random pick when nothing passes keeps them all). 0 with fewer
    than two revealed samples."""
    moved = 0
    if state.revealed >= 2:
        tests, slots = _revealed(state)
        base_m = _members(state.seen, tests, majority_pick(state.seen, tests))
        base_c = _members(state.seen, tests, codet_pick(state.seen, tests, slots))
        cache: dict[Draw, tuple[frozenset[int], frozenset[int]]] = {}
        for k in range(len(state.units)):
            t, s = _revealed(state, k)
            if (t, s) not in cache:
                cache[(t, s)] = (
                    _members(state.seen, t, majority_pick(state.seen, t)),
                    _members(state.seen, t, codet_pick(state.seen, t, s)),
                )
            pm, pc = cache[(t, s)]
            moved += (pm != base_m) + (pc != base_c)
    return moved


def pick_flip_rate(state: ProblemState) -> float:
    """Jackknife estimate of the chance that one more test sample changes the pick.

    The test samples are exchangeable, so "the k-th sample moved the pick made from
    the other k-1" estimates "the (k+1)-th will move the pick made from these k". With
    :func:`pick_moves` ``= moved`` of the ``2 x revealed`` pairs, the rate is
    ``(moved + 1) / (2 x revealed + 2)`` (the mean of a uniform prior updated by
    them): 1/2 before any test, and a problem whose samples yield nothing keeps a
    small, shrinking chance instead of none.
    """
    return (pick_moves(state) + 1) / (2 * state.revealed + 2)


def picks_disagree(state: ProblemState) -> bool:
    """Whether majority voting and CodeT keep different solution samples with the
    revealed tests (CodeT's random pick when nothing passes keeps them all)."""
    tests, slots = _revealed(state)
    return _members(state.seen, tests, majority_pick(state.seen, tests)) != _members(
        state.seen, tests, codet_pick(state.seen, tests, slots)
    )


def at_random(state: ProblemState) -> bool:
    """Whether no revealed test is passed by any sample (no test revealed yet
    included): both strategies still pick at random."""
    tests, _ = _revealed(state)
    return all(s.tests & tests == 0 for s in state.seen)


def separating_tests(state: ProblemState) -> int:
    """The revealed unique tests that at least one solution sample passes: the tests
    that can move a pick (a test every sample fails leaves them all tied)."""
    tests, _ = _revealed(state)
    passed = 0
    for s in state.seen:
        passed |= s.tests
    return (passed & tests).bit_count()


def pick_margin(state: ProblemState) -> float:
    """How contested CodeT's pick is: runner-up score / top score over the consensus
    sets of the revealed tests (1 when the top is tied or nothing passes, 0 when one
    set is the only one with passes)."""
    tests, slots = _revealed(state)
    merged = _merge(state.seen, tests)
    weight = _slot_count(state.seen, tests, slots)
    ranked = sorted((weight[key] * math.sqrt(n) for key, n in merged.items() if key), reverse=True)
    if not ranked or ranked[0] == 0:
        return 1.0
    return ranked[1] / ranked[0] if len(ranked) > 1 else 0.0


# --- spreading a round's units ----------------------------------------------------


def _check_round(states: Sequence[ProblemState], units: int) -> int:
    if units < 0:
        raise ValueError("a round cannot take tests away")
    return min(units, sum(s.room for s in states))


def _water_fill(states: Sequence[ProblemState], units: int, given: list[int]) -> list[int]:
    """Add ``units`` one at a time to the problem with the fewest tests (revealed +
    given), ties to the lower index, skipping problems without room."""
    heap = [(s.revealed + given[i], i) for i, s in enumerate(states) if given[i] < s.room]
    heapq.heapify(heap)
    for _ in range(units):
        if not heap:
            break
        level, i = heapq.heappop(heap)
        given[i] += 1
        if given[i] < states[i].room:
            heapq.heappush(heap, (level + 1, i))
    return given


def proportional(
    states: Sequence[ProblemState], units: int, priority: Sequence[float]
) -> list[int]:
    """Spread ``units`` in proportion to ``priority`` (D'Hondt: each unit to the
    largest ``priority / (1 + granted)``, ties to the lower index), within every
    problem's room; what no positive priority can take goes as :func:`equal`."""
    units = _check_round(states, units)
    given = [0] * len(states)
    heap = [(-p, i) for i, p in enumerate(priority) if p > 0 and states[i].room > 0]
    heapq.heapify(heap)
    left = units
    while left and heap:
        _, i = heapq.heappop(heap)
        given[i] += 1
        left -= 1
        if given[i] < states[i].room:
            heapq.heappush(heap, (-priority[i] / (1 + given[i]), i))
    return _water_fill(states, left, given)


# --- the allocations --------------------------------------------------------------


def equal(states: Sequence[ProblemState], units: int) -> list[int]:
    """Equal allocation: every unit to the problem with the fewest test samples so
    far, ties to the lower index. It ignores what the tests showed, so over the rounds
    it gives every problem the same number (the fixed-M run) until problems run out of
    test samples; the baseline every other rule must beat."""
    units = _check_round(states, units)
    return _water_fill(states, units, [0] * len(states))


def gold(states: Sequence[ProblemState], units: int) -> list[int]:
    """The paper's greedy rule with the *true* pass rate lambda (analysis only: it
    reads labels). Each unit goes to the largest marginal gain
    ``lambda (1 - lambda)^b`` of ``q(b) = 1 - (1 - lambda)^b`` at the problem's count
    b, so it is the rule's upper bound, not necessarily good for best-of-N: q(b)
    models "some test catches a sample", and favours problems the policy solves."""
    units = _check_round(states, units)
    counts = greedy_allocation(
        [s.pass_rate for s in states],
        units,
        [s.revealed for s in states],
        [s.cap for s in states],
    )
    return [c - s.revealed for c, s in zip(counts, states, strict=True)]


def paper_lambda(state: ProblemState) -> float:
    """The lambda ``paper`` uses: the probe's prediction, else the executions' estimate."""
    return state.predicted if state.predicted is not None else consensus_estimate(state)


def paper(states: Sequence[ProblemState], units: int) -> list[int]:
    """The paper's greedy rule on ``q(b) = 1 - (1 - lambda)^b`` with a predicted
    lambda: the difficulty probe's prediction where the state has one
    (``ProblemState.predicted``, as the paper does), else :func:`consensus_estimate`
    of the tests revealed so far (the rule is the same). The estimate is
    high where the samples agree, i.e. where the policy already solves the problem,
    and the rule's gain ``lambda (1 - lambda)^b`` then sends units there first. A
    problem with lambda-hat 0 (no sample passes a revealed test, or no test yet) has
    gain 0: it gets units only once every other problem is capped or at gain 0 too
    (then the lowest index first, the rule taken literally, as the replay in
    :mod:`shared.core.allocation` has it)."""
    units = _check_round(states, units)
    counts = greedy_allocation(
        [paper_lambda(s) for s in states],
        units,
        [s.revealed for s in states],
        [s.cap for s in states],
    )
    return [c - s.revealed for c, s in zip(counts, states, strict=True)]


def margin(states: Sequence[ProblemState], units: int) -> list[int]:
    """Ours: units in proportion to how contested CodeT's pick is
    (:func:`pick_margin`: runner-up / top consensus score). A clear winner is
    unlikely to be overtaken by a few more tests; a near tie is decided by them."""
    return proportional(states, units, [pick_margin(s) for s in states])


def flip(states: Sequence[ProblemState], units: int) -> list[int]:
    """Ours: units in proportion to the chance that one more test sample changes the
    pick (:func:`pick_flip_rate`, a jackknife over the revealed test samples, both
    strategies). A problem whose pick no revealed sample moves (all samples agree,
    its tests split no one, or its samples yield no tests) gets ever less; a problem
    whose pick each sample moves gets the most."""
    return proportional(states, units, [pick_flip_rate(s) for s in states])


def disagree(states: Sequence[ProblemState], units: int) -> list[int]:
    """Ours: three times the units where majority voting and CodeT pick different
    solutions (:func:`picks_disagree`) as where they agree. Two rules that read the
    same tests differently and agree corroborate the pick; where they differ at least
    one is wrong, and the tests so far do not settle which."""
    return proportional(states, units, [3.0 if picks_disagree(s) else 1.0 for s in states])


def settled(states: Sequence[ProblemState], units: int) -> list[int]:
    """Ours, the reverse of :func:`flip`: a problem whose pick some revealed test
    sample moves (:func:`pick_moves` > 0) gets 0.3 of the share of one whose pick no
    revealed sample moves. On the CodeT HumanEval set ``flip`` loses to ``equal``: a
    pick that single tests move is decided by tests that contradict each other, which
    is what a problem without a correct cluster of solutions looks like, and more
    tests rarely fix it; a pick every revealed test corroborates belongs to a cluster
    the tests single out, and more tests firm it up. (Made after seeing ``flip`` lose
    on that set, with no held-out set: its figures there are not an independent
    test.)"""
    return proportional(states, units, [0.3 if pick_moves(s) else 1.0 for s in states])


def starved(states: Sequence[ProblemState], units: int) -> list[int]:
    """Ours: three times the units for a problem still at the random pick
    (:func:`at_random`: no sample passes a revealed test, or it has none yet) as for
    one whose tests already separate its samples. The first test some sample passes
    is what moves a pick off the random pick, the steepest part of a problem's
    accuracy curve; once tests separate the samples each further one adds less. The
    factor trades that against starving the others (2, 3, 6 and 20 were tried on the
    CodeT HumanEval set; 3 did best there, so its figures there are not an
    independent test)."""
    return proportional(states, units, [3.0 if at_random(s) else 1.0 for s in states])


def scarce(states: Sequence[ProblemState], units: int) -> list[int]:
    """Ours: units in proportion to ``1 / sqrt(1 + separating tests)``
    (:func:`separating_tests`). What moves a pick is a test some sample passes; a
    problem without one is still at the random pick, the steepest part of its
    accuracy curve, and each further separating test adds less (the noise of a vote
    over k tests falls like ``1 / sqrt(k)``). ``equal`` spreads test *samples*, but
    samples yield separating tests at very different rates (on the CodeT HumanEval
    set 0 to 65% of a problem's samples yield any test at all), so after a few rounds
    some problems have a dozen separating tests and others none; this spreads
    samples toward an even count of separating tests instead, without starving a
    problem whose samples yield nothing (it keeps weight 1, as one at the random
    pick). The exponent was chosen among 0.5, 0.75 and 1 on that set (0.5), after
    :func:`starved` (the 0 / more-than-0 version), so its figures there are not an
    independent test."""
    return proportional(states, units, [1.0 / math.sqrt(1 + separating_tests(s)) for s in states])


ALLOCATIONS: Mapping[str, Allocation] = {
    "equal": equal,
    "gold": gold,
    "paper": paper,
    "margin": margin,
    "flip": flip,
    "disagree": disagree,
    "settled": settled,
    "starved": starved,
    "scarce": scarce,
}
"""Every allocation by name; ``equal`` first (the baseline)."""


# --- the simulation ---------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    bits: BitMatrix
    groups: list[Group]
    units: tuple[Draw, ...]
    pass_rate: float


def _prepare(problem: OrderedProblem) -> _Prepared:
    """A :class:`BitMatrix` whose slots follow the test samples' generation order:
    sample k's tests take consecutive slots, one a test occurrence (CodeT's weights)."""
    matrix = problem.matrix
    bit = {t: b for b, t in enumerate(matrix.tests)}
    slot_test: list[int] = []
    units: list[Draw] = []
    test_slots = [0] * len(bit)
    for sample in problem.sample_tests:
        tests = slots = 0
        for t in sample:
            j = len(slot_test)
            slot_test.append(bit[t])
            test_slots[bit[t]] |= 1 << j
            tests |= 1 << bit[t]
            slots |= 1 << j
        units.append((tests, slots))
    known = [[bit[t] for t in c.passed if t in bit] for c in matrix.candidates]
    bits = BitMatrix(
        matrix,
        tuple(slot_test),
        len(bit),
        tuple(sum(1 << b for b in k) for k in known),
        tuple(sum(test_slots[b] for b in k) for k in known),
        tuple(c.correct for c in matrix.candidates),
    )
    return _Prepared(bits, bits.groups(), tuple(units), matrix.pass_rate)


def _seen(groups: Sequence[Group], draw: Draw) -> tuple[Seen, ...]:
    tests, slots = draw
    acc: dict[int, list[int]] = {}
    for g in groups:
        key = g.tests & tests
        entry = acc.get(key)
        if entry is None:
            acc[key] = [g.slots & slots, g.samples]
        else:
            entry[1] += g.samples
    return tuple(Seen(key, s, n) for key, (s, n) in acc.items())


def round_units(spent: int, problems: int, per_doubling: int = 4) -> int:
    """A round's units after ``spent``: ``1 / per_doubling`` of the average spent so far
    (whole tests a problem, at least one) times the problems, so the budget doubles in
    about ``per_doubling`` rounds."""
    return problems * max(1, spent // problems // per_doubling)


def round_grants(
    states: Sequence[ProblemState],
    spent: int,
    budget: int,
    allocation: Allocation,
    first_round: int = 1,
    per_doubling: int = 4,
) -> list[int]:
    """The grants of the next round of a loop that has spent ``spent`` of ``budget``
    test samples (totals over the problems ``states``): while the first round is not
    spent, :func:`equal` up to ``first_round`` samples a problem; after it, a round of
    :func:`round_units` units split by ``allocation``; never past ``budget``. The one
    rule of both the simulation (:func:`simulate_draw`) and a live run's planner.
    ``ValueError`` when the allocation grants more than a problem's room or than the
    round's units, or fewer than it could."""
    count = len(states)
    if spent < first_round * count:
        units = min(first_round * count, budget) - spent
        grants = equal(states, units)
    else:
        units = min(round_units(spent, count, per_doubling), budget - spent)
        grants = allocation(states, max(units, 0))
    expected = min(max(units, 0), sum(s.room for s in states))
    if sum(grants) != expected or any(
        g < 0 or g > s.room for g, s in zip(grants, states, strict=True)
    ):
        raise ValueError(f"allocation granted {grants!r} for {units} units")
    return grants


def first_samples(problem: OrderedProblem, samples: int) -> OrderedProblem:
    """``problem`` as its first ``samples`` test samples show it: their tests alone
    (weights counted over them), every candidate's passed set cut to them."""
    if samples >= len(problem.sample_tests):
        return problem
    kept = problem.sample_tests[:samples]
    weights = Counter(t for sample in kept for t in sample)
    matrix = problem.matrix
    candidates = tuple(
        replace(c, passed=frozenset(t for t in c.passed if t in weights)) for c in matrix.candidates
    )
    return OrderedProblem(
        replace(matrix, candidates=candidates, test_weights=dict(weights), test_samples=samples),
        kept,
    )


def revealed_state(problem: OrderedProblem, revealed: int, cap: int) -> ProblemState:
    """What a live loop knows of a problem whose every stored test sample has run:
    ``problem.sample_tests`` in generation order, ``revealed`` test samples asked for
    so far (the budget's unit: a sample the generator came short of still counts) and
    ``cap`` in all. ``pass_rate`` is NaN: a live loop has no labels (``gold`` cannot
    run live)."""
    prepared = _prepare(problem)
    tests = slots = 0
    for t, s in prepared.units:
        tests |= t
        slots |= s
    return ProblemState(
        revealed, cap, prepared.units, _seen(prepared.groups, (tests, slots)), math.nan
    )


@dataclass(frozen=True)
class DrawResult:
    """One draw of one allocation: at each budget (average test samples a problem),
    the accuracy of each :data:`SIM_STRATEGIES` (mean over problems, 0..1), each
    problem's score, and the tests each problem had."""

    budget: float
    accuracy: tuple[float, ...]
    per_problem: tuple[tuple[float, ...], ...]
    tests: tuple[int, ...]


def simulate_draw(
    problems: Sequence[OrderedProblem],
    allocation: Allocation,
    budgets: Sequence[int] = ROUND_BUDGETS,
    first_round: int = 1,
    draw: int | None = 0,
    seed: int = 0,
    per_doubling: int = 4,
    *,
    _prepared: Sequence[_Prepared] | None = None,
) -> list[DrawResult]:
    """One draw of the round-based loop for ``allocation``, read at every budget.

    Draw ``d`` orders problem p's test samples by
    ``random.Random(f"{seed}:rounds:{task_id}:{d}")`` (a shuffle); ``draw=None`` keeps
    the generation order, the order a live run reveals them in. The first round
    gives every problem ``first_round`` samples (equally, as far as a budget asked for
    stops it earlier); then each round's units are :func:`round_units` (never past the
    next budget asked for), split by ``allocation``, and the granted samples are
    revealed next in the draw's order. Budgets are average samples a problem (total =
    budget x problems); the loop stops at each, so the figure at B is that of a run
    whose budget is B. Once no problem has samples left, the later budgets repeat the
    last state. ``ValueError`` when an allocation grants more than a problem's room or
    than the round's units, or fewer than it could.
    """
    if not problems or first_round < 0 or min(budgets, default=0) < 0:
        raise ValueError("need problems and non-negative budgets")
    prepared = list(_prepared) if _prepared is not None else [_prepare(p) for p in problems]
    count = len(prepared)
    orders = [
        list(range(len(q.units)))
        if draw is None
        else random.Random(f"{seed}:rounds:{p.matrix.task_id}:{draw}").sample(
            range(len(q.units)), len(q.units)
        )
        for p, q in zip(problems, prepared, strict=True)
    ]
    revealed = [0] * count
    draws: list[Draw] = [(0, 0)] * count
    targets = sorted({b * count for b in budgets})
    spent = 0
    out: list[DrawResult] = []

    def states() -> list[ProblemState]:
        return [
            ProblemState(
                revealed[i],
                len(q.units),
                tuple(q.units[k] for k in orders[i][: revealed[i]]),
                _seen(q.groups, draws[i]),
                q.pass_rate,
            )
            for i, q in enumerate(prepared)
        ]

    def reveal(grants: Sequence[int]) -> int:
        for i, g in enumerate(grants):
            q = prepared[i]
            tests, slots = draws[i]
            for k in orders[i][revealed[i] : revealed[i] + g]:
                tests |= q.units[k][0]
                slots |= q.units[k][1]
            draws[i] = (tests, slots)
            revealed[i] += g
        return sum(grants)

    def snapshot(total: int) -> None:
        per = tuple(
            tuple(score_draw(q.groups, draws[i])[c] for c in _COLUMNS)
            for i, q in enumerate(prepared)
        )
        accuracy = tuple(math.fsum(row[s] for row in per) / count for s in range(len(_COLUMNS)))
        out.append(DrawResult(total / count, accuracy, per, tuple(revealed)))

    for target in targets:
        while spent < target:
            current = states()
            room = sum(s.room for s in current)
            if room == 0:
                break
            grants = round_grants(current, spent, target, allocation, first_round, per_doubling)
            spent += reveal(grants)
        snapshot(target)
    return out


@dataclass(frozen=True)
class SimPoint:
    """An allocation at a budget over all draws: per strategy the mean accuracy (%)
    and its standard error over draws; against ``equal`` (same draws, paired) the mean
    difference (points), its standard error over draws and over problems (the
    per-problem differences averaged over draws; the stricter one, the problem set
    being a sample too); the mean tests used a problem."""

    allocation: str
    budget: float
    accuracy: tuple[float, ...]
    stderr: tuple[float, ...]
    delta: tuple[float, ...]
    delta_stderr: tuple[float, ...]
    delta_stderr_problems: tuple[float, ...]
    tests: float
    draws: int


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def simulate(
    problems: Sequence[OrderedProblem],
    allocations: Mapping[str, Allocation] = ALLOCATIONS,
    budgets: Sequence[int] = ROUND_BUDGETS,
    first_round: int = 1,
    draws: int = 20,
    seed: int = 0,
    per_doubling: int = 4,
) -> list[SimPoint]:
    """Every allocation of ``allocations`` (``equal`` among them: the baseline of the
    paired differences) over ``draws`` draws of :func:`simulate_draw`; one
    :class:`SimPoint` an allocation and budget, in the mapping's order then budget
    order. Deterministic for a ``seed``."""
    if "equal" not in allocations or draws < 1:
        raise ValueError("need the equal allocation and at least one draw")
    prepared = [_prepare(p) for p in problems]
    results = {
        name: [
            simulate_draw(
                problems, rule, budgets, first_round, d, seed, per_doubling, _prepared=prepared
            )
            for d in range(draws)
        ]
        for name, rule in allocations.items()
    }
    base = results["equal"]
    count = len(problems)
    out = []
    for name, per_draw in results.items():
        for b in range(len(per_draw[0])):
            rows = [r[b] for r in per_draw]
            acc, se, delta, dse, pse = [], [], [], [], []
            for s in range(len(SIM_STRATEGIES)):
                m, e = _mean_se([100 * r.accuracy[s] for r in rows])
                acc.append(m)
                se.append(e)
                diffs = [
                    100 * (r.accuracy[s] - q[b].accuracy[s])
                    for r, q in zip(rows, base, strict=True)
                ]
                dm, de = _mean_se(diffs)
                delta.append(dm)
                dse.append(de)
                per_problem = [
                    100
                    * math.fsum(
                        r.per_problem[i][s] - q[b].per_problem[i][s]
                        for r, q in zip(rows, base, strict=True)
                    )
                    / draws
                    for i in range(count)
                ]
                pse.append(_mean_se(per_problem)[1])
            tests = math.fsum(sum(r.tests) for r in rows) / (draws * count)
            out.append(
                SimPoint(
                    name,
                    rows[0].budget,
                    tuple(acc),
                    tuple(se),
                    tuple(delta),
                    tuple(dse),
                    tuple(pse),
                    tests,
                    draws,
                )
            )
    return out
