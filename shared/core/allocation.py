"""Dynamic unit-test scaling (CodeRM section 3.2): how many tests each problem
gets from a total budget, and the accuracy each allocation buys on a stored run
(pure, no I/O).

A *unit* is one test slot (:data:`~shared.core.analysis_types.TestDrawMode`). The
paper's reward model of spending b units on a problem of pass rate lambda is
``q(b) = 1 - (1 - lambda)^b``; its marginal gain ``lambda (1 - lambda)^b`` favours easy
problems first (the paper says so itself). No code for this part was released; the
rules below follow the paper's text. The allocations of a live loop in rounds, and
their simulation, are in :mod:`shared.core.allocation_rounds`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from typing import Literal

from shared.core.analysis_types import AllocationPoint, ProblemMatrix, TestDrawMode
from shared.core.bitmatrix import STRATEGIES, BitMatrix, Group, consensus_share, score_draw

BUDGETS_PER_PROBLEM = (1, 2, 5, 10, 20, 50)


def marginal_gain(lam: float, b: int) -> float:
    """``q(b+1) - q(b) = lambda (1 - lambda)^b`` for ``q(b) = 1 - (1 - lambda)^b``."""
    return lam * (1.0 - lam) ** b


def _check(
    count: int, budget: int, start: Sequence[int] | None, caps: Sequence[int] | None
) -> None:
    if budget < 0:
        raise ValueError("the budget cannot be negative")
    for name, seq in (("start", start), ("caps", caps)):
        if seq is not None and (len(seq) != count or min(seq, default=0) < 0):
            raise ValueError(f"{name} needs one non-negative count a problem")


def greedy_allocation(
    lambdas: Sequence[float],
    budget: int,
    start: Sequence[int] | None = None,
    caps: Sequence[int] | None = None,
) -> list[int]:
    """Greedy marginal-gain allocation of ``budget`` units over problems.

    From ``start`` (default all 0), each unit goes to the problem with the largest
    :func:`marginal_gain` at its current count, ties to the lower index; a problem at
    its cap (``caps``, default none) gets no more. Stops when the budget is spent or
    every problem is capped. Returns the final counts (``start`` included).
    ``ValueError`` on a lambda outside [0, 1] or bad counts.
    """
    if any(not 0.0 <= lam <= 1.0 for lam in lambdas):
        raise ValueError("pass rates lie in [0, 1]")
    _check(len(lambdas), budget, start, caps)
    counts = list(start) if start is not None else [0] * len(lambdas)
    limit = list(caps) if caps is not None else [math.inf] * len(lambdas)
    heap = [
        (-marginal_gain(lambdas[i], counts[i]), i)
        for i in range(len(lambdas))
        if counts[i] < limit[i]
    ]
    heapq.heapify(heap)
    for _ in range(budget):
        if not heap:
            break
        _, i = heapq.heappop(heap)
        counts[i] += 1
        if counts[i] < limit[i]:
            heapq.heappush(heap, (-marginal_gain(lambdas[i], counts[i]), i))
    return counts


def equal_allocation(problems: int, budget: int, caps: Sequence[int] | None = None) -> list[int]:
    """Equal allocation: each unit to the problem with the fewest units, ties to the
    lower index, skipping capped problems; without caps ``budget // problems`` each
    and one more to each of the first ``budget % problems``."""
    _check(problems, budget, None, caps)
    limit = list(caps) if caps is not None else [math.inf] * problems
    counts = [0] * problems
    heap = [(0, i) for i in range(problems) if limit[i] > 0]
    for _ in range(budget):
        if not heap:
            break
        b, i = heapq.heappop(heap)
        counts[i] = b + 1
        if b + 1 < limit[i]:
            heapq.heappush(heap, (b + 1, i))
    return counts


Rule = Literal["equal", "gold", "estimated"]


def allocation_curve(
    problems: Sequence[ProblemMatrix],
    budgets_per_problem: Sequence[int] = BUDGETS_PER_PROBLEM,
    probe: int = 1,
    samples: int = 20,
    seed: int = 0,
    mode: TestDrawMode = "samples",
    strategy: str = "coderm_majority",
) -> list[AllocationPoint]:
    """Accuracy vs total budget for equal, gold-lambda and estimated-lambda allocation.

    Total budget ``B = per_problem x P`` units, a problem capped at its S slots.
    *equal*: :func:`equal_allocation`. *gold*: :func:`greedy_allocation` with the true
    pass rates. *estimated*: every problem first gets ``probe`` units; lambda-hat is
    the share of its samples in CodeT's top consensus set with those tests (0 when no
    sample passes one, :func:`~shared.core.bitmatrix.consensus_share`); the other
    ``B - P x probe`` units are allocated greedily from there (only budgets with
    ``per_problem >= probe``). A problem given b units is scored with ``strategy``
    (default majority voting; 0 units = no tests = the random pick) on the first b
    slots of a random permutation of its slots; ``samples`` permutations a problem,
    ``random.Random(f"{seed}:alloc:{problem_id}:{d}")``, shared by all rules and
    budgets (so the probe's tests are among the b), accuracy the mean over them.
    """
    if not problems or samples < 1 or probe < 0:
        raise ValueError("need problems, at least one draw and a non-negative probe")
    column = STRATEGIES.index(strategy)
    bits = [BitMatrix.of(p, mode) for p in problems]
    groups = [b.groups() for b in bits]
    caps = [b.slots for b in bits]
    orders = [
        [
            random.Random(f"{seed}:alloc:{b.problem.problem_id}:{d}").sample(
                range(b.slots), b.slots
            )
            for d in range(samples)
        ]
        for b in bits
    ]
    cache: dict[tuple[int, int, int], float] = {}

    def score(i: int, d: int, units: int) -> float:
        key = (i, d, min(units, caps[i]))
        if key not in cache:
            draw = bits[i].draw(orders[i][d][: key[2]])
            cache[key] = score_draw(groups[i], draw)[column]
        return cache[key]

    def accuracy(allocations: Sequence[Sequence[int]]) -> float:
        per_draw = [
            math.fsum(score(i, d, units) for i, units in enumerate(alloc)) / len(alloc)
            for d, alloc in enumerate(allocations)
        ]
        return math.fsum(per_draw) / samples

    starts = [min(probe, cap) for cap in caps]
    estimates = [
        [_estimate(groups[i], bits[i], orders[i][d][:probe]) for i in range(len(bits))]
        for d in range(samples)
    ]
    gold = [p.pass_rate for p in problems]
    out = []
    for per in sorted(set(budgets_per_problem)):
        budget = per * len(problems)
        rules: list[tuple[Rule, list[list[int]]]] = [
            ("equal", [equal_allocation(len(problems), budget, caps)] * samples),
            ("gold", [greedy_allocation(gold, budget, caps=caps)] * samples),
        ]
        if per >= probe:
            rest = budget - sum(starts)
            rules.append(
                ("estimated", [greedy_allocation(lam, rest, starts, caps) for lam in estimates])
            )
        out += [
            AllocationPoint(rule, budget, budget / len(problems), accuracy(allocs), len(problems))
            for rule, allocs in rules
        ]
    return out


def _estimate(groups: list[Group], bits: BitMatrix, slots: Sequence[int]) -> float:
    return consensus_share(groups, bits.draw(slots))
