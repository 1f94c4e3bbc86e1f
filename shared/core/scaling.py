"""Scaling curves from a run's stored matrices: best-of-N accuracy as the number of
tests m or of solutions n grows, overall and per difficulty decile (pure, no I/O).

Nothing is re-executed: a draw of tests or solutions is applied to the stored
pass/fail matrix. Strategies are the ones of :mod:`shared.core.strategies`
(``coderm_majority``, ``codet``, ``first_max``, ``mbr_exec``; ``vanilla`` and
``oracle`` as references), computed on bitmasks (:mod:`shared.core.bitmatrix`).

Each (problem, axis, size) has its own ``random.Random(f"{seed}:{axis}:{problem_id}:{size}")``,
so a point does not depend on which other problems or sizes are computed, and a
bucket's curve equals the curve of its problems alone.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from shared.core.analysis_types import (
    ALL_PROBLEMS,
    CurvePoint,
    DifficultyBucket,
    ProblemMatrix,
    SolutionDrawMode,
    TestDrawMode,
)
from shared.core.bitmatrix import STRATEGIES, BitMatrix, Draw, Scores, score_draw

TEST_SIZES = (1, 2, 5, 10, 20, 50, 100)
SOLUTION_SIZES = (1, 2, 5, 10, 20, 50, 100)
CURVE_STRATEGIES = STRATEGIES


def difficulty_bucket(problem: ProblemMatrix) -> DifficultyBucket:
    """The problem's pass-rate decile, ``min(10 * c // n, 9)`` (see DifficultyBucket)."""
    n = len(problem.candidates)
    c = sum(1 for cand in problem.candidates if cand.correct)
    return DifficultyBucket(min(10 * c // n, 9))


def _sizes(sizes: Sequence[int], available: int) -> list[int]:
    """The sizes below ``available`` and the first one at or above it."""
    if not sizes or min(sizes) < 1:
        raise ValueError("sizes must be at least 1")
    ordered = sorted(set(sizes))
    kept = [s for s in ordered if s < available]
    return kept + [s for s in ordered if s >= available][:1]


def _test_draws(bits: BitMatrix, m: int, samples: int, seed: int) -> list[Scores]:
    groups = bits.groups()
    if m >= bits.slots:
        return [score_draw(groups, bits.everything)] * samples
    rng = random.Random(f"{seed}:tests:{bits.problem.problem_id}:{m}")
    cache: dict[Draw, Scores] = {}
    out = []
    for _ in range(samples):
        key = bits.random_draw(m, rng)
        if key not in cache:
            cache[key] = score_draw(groups, key)
        out.append(cache[key])
    return out


def _solution_draws(
    bits: BitMatrix, n: int, samples: int, seed: int, mode: SolutionDrawMode
) -> list[Scores]:
    if n >= bits.samples or mode == "prefix":
        groups = bits.groups(range(min(n, bits.samples)))
        return [score_draw(groups, bits.everything)] * samples
    rng = random.Random(f"{seed}:solutions:{bits.problem.problem_id}:{n}")
    return [
        score_draw(bits.groups(sorted(rng.sample(range(bits.samples), n))), bits.everything)
        for _ in range(samples)
    ]


def _points(
    axis: Literal["tests", "solutions"],
    size: int,
    per_problem: Sequence[tuple[ProblemMatrix, list[Scores], bool]],
    draws: int,
) -> list[CurvePoint]:
    """Aggregate per-draw scores into points, over all problems and per bucket."""
    members: dict[str, list[tuple[list[Scores], bool]]] = defaultdict(list)
    buckets: dict[int, str] = {}
    for problem, scores, capped in per_problem:
        bucket = difficulty_bucket(problem)
        buckets[bucket.index] = bucket.label
        members[ALL_PROBLEMS].append((scores, capped))
        members[bucket.label].append((scores, capped))
    out = []
    for label in [ALL_PROBLEMS, *(buckets[i] for i in sorted(buckets))]:
        rows = members[label]
        for k, strategy in enumerate(CURVE_STRATEGIES):
            runs = [math.fsum(s[d][k] for s, _ in rows) / len(rows) for d in range(draws)]
            out.append(
                CurvePoint(
                    axis=axis,
                    size=size,
                    strategy=strategy,
                    bucket=label,
                    accuracy=math.fsum(runs) / draws,
                    stdev=statistics.pstdev(runs) if draws > 1 else 0.0,
                    problems=len(rows),
                    draws=draws,
                    capped=sum(1 for _, capped in rows if capped),
                )
            )
    return out


def tests_curve(
    problems: Sequence[ProblemMatrix],
    sizes: Sequence[int] = TEST_SIZES,
    samples: int = 100,
    seed: int = 0,
    mode: TestDrawMode = "samples",
) -> list[CurvePoint]:
    """Best-of-N accuracy of each strategy as the number of tests m grows.

    Each problem has S test slots (:data:`~shared.core.analysis_types.TestDrawMode`:
    ``"samples"`` one slot per test occurrence plus empty completions, ``"coderm"``
    one per unique test plus empty ones up to ``test_samples``). For each m, each of
    ``samples`` draws takes ``min(m, S)`` slots without replacement; a test counts for
    majority voting, first-max and MBR-Exec when any of its slots is drawn, and with
    the number of its drawn slots as CodeT's weight. All solution samples are used; all
    strategies see the same draws. A problem with ``m >= S`` is scored once with
    every slot (``capped``). The sizes kept are those below the largest S and the
    first one at or above it. A point's ``draws`` is 1 when every problem is capped.
    Points for every strategy of :data:`CURVE_STRATEGIES`, over all problems and for
    each non-empty difficulty bucket, by size, bucket (all first), strategy.
    """
    if not problems or samples < 1:
        raise ValueError("need at least one problem and one draw")
    preps = [BitMatrix.of(p, mode) for p in problems]
    out = []
    for m in _sizes(sizes, max(p.slots for p in preps)):
        capped = [m >= p.slots for p in preps]
        draws = 1 if all(capped) else samples
        rows = [
            (p.problem, _test_draws(p, m, draws, seed), cap)
            for p, cap in zip(preps, capped, strict=True)
        ]
        out += _points("tests", m, rows, draws)
    return out


def solutions_curve(
    problems: Sequence[ProblemMatrix],
    sizes: Sequence[int] = SOLUTION_SIZES,
    samples: int = 100,
    seed: int = 0,
    mode: SolutionDrawMode = "prefix",
) -> list[CurvePoint]:
    """Best-of-N accuracy of each strategy as the number of solution samples n grows.

    Every test is used, with its full weight for CodeT. ``"prefix"`` (default, as
    CodeRM's ``sol_ids[:sol_num]``) scores the first ``min(n, N)`` samples once
    (``draws`` 1); ``"bootstrap"`` draws n of the N samples without replacement
    ``samples`` times (first-max then picks the lowest original position drawn).
    Vanilla and oracle are computed on the same n samples. Difficulty buckets use
    the pass rate over all N samples. Sizes, capping and point order as
    :func:`tests_curve`.
    """
    if not problems or samples < 1:
        raise ValueError("need at least one problem and one draw")
    preps = [BitMatrix.of(p, "samples") for p in problems]
    out = []
    for n in _sizes(sizes, max(p.samples for p in preps)):
        capped = [n >= p.samples for p in preps]
        draws = 1 if mode == "prefix" or all(capped) else samples
        rows = [
            (p.problem, _solution_draws(p, n, draws, seed, mode), cap)
            for p, cap in zip(preps, capped, strict=True)
        ]
        out += _points("solutions", n, rows, draws)
    return out
