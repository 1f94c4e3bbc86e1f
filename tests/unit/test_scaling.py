"""Scaling curves and the bitmask strategies behind them, on hand-computed tables."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from shared.core import scaling
from shared.core.analysis_types import ALL_PROBLEMS, CurvePoint, ProblemMatrix
from shared.core.bitmatrix import STRATEGIES, BitMatrix, consensus_share, score_draw
from shared.core.scaling import difficulty_bucket, solutions_curve
from shared.core.strategies import (
    Candidate,
    coderm_majority_bootstrap,
    coderm_majority_vote,
    codet_dual_agreement,
    first_max,
    mbr_exec,
    oracle,
    restrict_tests,
    vanilla,
)


def c(sid: int | None, passed: tuple[int, ...] = (), correct: bool = False) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def problem(
    cands: list[Candidate], weights: dict[int, int], test_samples: int, pid: int = 1
) -> ProblemMatrix:
    return ProblemMatrix(pid, f"T/{pid}", tuple(cands), weights, test_samples)


def points(curve: list[CurvePoint], size: int, bucket: str = ALL_PROBLEMS) -> dict[str, float]:
    return {p.strategy: p.accuracy for p in curve if p.size == size and p.bucket == bucket}


# ------------------------------------------------------------------ difficulty buckets


@pytest.mark.parametrize(
    ("correct", "samples", "index", "label"),
    [
        (0, 100, 0, "[0.0,0.1)"),
        (9, 100, 0, "[0.0,0.1)"),
        (10, 100, 1, "[0.1,0.2)"),
        (3, 10, 3, "[0.3,0.4)"),
        (7, 10, 7, "[0.7,0.8)"),
        (1, 3, 3, "[0.3,0.4)"),
        (2, 3, 6, "[0.6,0.7)"),
        (99, 100, 9, "[0.9,1.0]"),
        (100, 100, 9, "[0.9,1.0]"),
    ],
)
def test_difficulty_bucket(correct: int, samples: int, index: int, label: str) -> None:
    cands = [c(i, (), i < correct) for i in range(samples)]
    bucket = difficulty_bucket(problem(cands, {}, 0))
    assert (bucket.index, bucket.label) == (index, label)


# ------------------------------------------------------------------ bitmask strategies


def random_problem(rng: random.Random, pid: int) -> ProblemMatrix:
    """Few tests and codes so that ties, duplicates and empty sets are frequent."""
    tests = rng.sample(range(1, 9), rng.randint(0, 4))
    weights = {t: rng.randint(1, 3) for t in tests}
    codes = [
        (sid, frozenset(t for t in tests if rng.random() < 0.5), rng.random() < 0.4)
        for sid in range(rng.randint(1, 4))
    ]
    cands = []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.15:
            cands.append(Candidate(None))
        else:
            sid, passed, ok = rng.choice(codes)
            cands.append(Candidate(sid, passed, ok))
    return problem(cands, weights, rng.randint(0, 12), pid)


def reference(cands: list[Candidate], weights: dict[int, int]) -> tuple[float, ...]:
    return (
        vanilla(cands).score,
        oracle(cands).score,
        coderm_majority_vote(cands).score,
        codet_dual_agreement(cands, weights).score,
        first_max(cands).score,
        mbr_exec(cands).score,
    )


def test_bitmask_strategies_equal_the_reference_ones() -> None:
    rng = random.Random(11)
    for pid in range(400):
        p = random_problem(rng, pid)
        cands = list(p.candidates)
        for mode in ("samples", "coderm"):
            bits = BitMatrix.of(p, mode)
            groups = bits.groups()
            weights = dict(p.test_weights) if mode == "samples" else dict.fromkeys(p.tests, 1)
            assert score_draw(groups, bits.everything) == pytest.approx(reference(cands, weights))
            for m in range(1, bits.slots + 1):
                slots = rng.sample(range(bits.slots), m)
                drawn = Counter(
                    bits.problem.tests[bits.slot_test[j]] for j in slots if bits.slot_test[j] >= 0
                )
                seen = restrict_tests(cands, drawn)
                got = score_draw(groups, bits.draw(slots))
                assert got == pytest.approx(reference(seen, dict(drawn))), (pid, mode, slots)


@pytest.mark.parametrize(
    ("cands", "weights", "share"),
    [
        # top consensus set {1, 2}: 2 of 4 samples
        ([c(1, (1, 2), True), c(2, (1, 2)), c(3, (1,)), c(None)], {1: 1, 2: 1}, 0.5),
        # sqrt(2) * 1 vs 1 * 1: the duplicated code's set
        ([c(1, (1,)), c(1, (1,)), c(2, (2,))], {1: 1, 2: 1}, 2 / 3),
        # tied sets merged: all 2 samples
        ([c(1, (1,)), c(2, (2,))], {1: 1, 2: 1}, 1.0),
        # nothing passes
        ([c(1), c(2)], {1: 1}, 0.0),
    ],
)
def test_consensus_share(cands: list[Candidate], weights: dict[int, int], share: float) -> None:
    bits = BitMatrix.of(problem(cands, weights, 2), "samples")
    assert consensus_share(bits.groups(), bits.everything) == pytest.approx(share)


# ------------------------------------------------------------------ tests curve

# tests 1 and 2, one slot each. Test 1 alone: solution 1 (correct) alone on top for
# majority, CodeT and first-max -> 1, but MBR-Exec sees {1} once and {} twice -> 0;
# test 2 alone: solutions 2 and 3 -> 0 for every strategy. Both tests: majority keeps
# {2} (consistency 2) -> 0; CodeT 1*sqrt(2) > 1*1 -> 0; first-max: sample 0 -> 1;
# MBR-Exec {2} twice -> 0.
TINY = problem([c(1, (1,), True), c(2, (2,)), c(3, (2,))], {1: 1, 2: 1}, 2)


def test_tests_curve_hand_computed() -> None:
    curve = scaling.tests_curve([TINY], sizes=(1, 2, 5), samples=400, seed=3)
    assert sorted({p.size for p in curve}) == [1, 2]  # 5 > the 2 slots: dropped
    assert {p.bucket for p in curve} == {ALL_PROBLEMS, "[0.3,0.4)"}
    full = points(curve, 2)
    assert full == pytest.approx(
        {
            "vanilla": 1 / 3,
            "oracle": 1.0,
            "coderm_majority": 0.0,
            "codet": 0.0,
            "first_max": 1.0,
            "mbr_exec": 0.0,
        }
    )
    one = points(curve, 1)
    assert one["vanilla"] == pytest.approx(1 / 3)
    assert one["oracle"] == 1.0
    # every draw gives the same score to the three selections: either 1 or 0
    assert one["coderm_majority"] == one["codet"] == one["first_max"]
    assert one["coderm_majority"] == pytest.approx(0.5, abs=0.1)
    assert one["mbr_exec"] == 0.0
    by_size = {(p.size, p.strategy): p for p in curve if p.bucket == ALL_PROBLEMS}
    assert (by_size[1, "codet"].draws, by_size[1, "codet"].capped) == (400, 0)
    assert (by_size[2, "codet"].draws, by_size[2, "codet"].capped) == (1, 1)
    assert by_size[2, "codet"].stdev == 0.0
    assert by_size[1, "codet"].stdev == pytest.approx(0.5, abs=0.05)


def test_duplicate_tests_weigh_for_codet_only_in_samples_mode() -> None:
    # test 1 from 3 completions, test 2 from 1: CodeT 3*1 > 1*1 picks solution 1;
    # majority and CodeRM's deduplicated index see a tie
    dup = problem([c(1, (1,), True), c(2, (2,))], {1: 3, 2: 1}, 4)
    samples = points(scaling.tests_curve([dup], sizes=(4,), samples=1), 4)
    coderm = points(scaling.tests_curve([dup], sizes=(4,), samples=1, mode="coderm"), 4)
    assert (samples["codet"], samples["coderm_majority"]) == pytest.approx((1.0, 0.5))
    assert (coderm["codet"], coderm["coderm_majority"]) == pytest.approx((0.5, 0.5))


def test_coderm_mode_replays_the_coderm_bootstrap() -> None:
    rng = random.Random(5)
    problems = [random_problem(rng, pid) for pid in range(30)]
    for m in (1, 2, 5):
        curve = scaling.tests_curve(problems, sizes=(m, 100), samples=25, seed=9, mode="coderm")
        expected = [
            coderm_majority_bootstrap(
                list(p.candidates),
                p.tests,
                p.test_samples,
                m,
                25,
                random.Random(f"9:tests:{p.problem_id}:{m}"),
            ).score
            for p in problems
        ]
        assert points(curve, m)["coderm_majority"] == pytest.approx(sum(expected) / 30)


def test_problems_without_tests() -> None:
    nothing = problem([c(1, (), True), c(2), c(None), c(3)], {}, 0)
    curve = scaling.tests_curve([nothing], sizes=(1, 10))
    assert {p.size for p in curve} == {1}
    assert points(curve, 1) == pytest.approx(
        {
            "vanilla": 0.25,
            "oracle": 1.0,
            "coderm_majority": 0.25,
            "codet": 0.25,
            "first_max": 1.0,
            "mbr_exec": 0.25,
        }
    )


def test_buckets_equal_the_curve_of_their_problems_alone() -> None:
    rng = random.Random(8)
    problems = [random_problem(rng, pid) for pid in range(40)]
    curve = scaling.tests_curve(problems, sizes=(1, 3), samples=10)
    for label in {p.bucket for p in curve} - {ALL_PROBLEMS}:
        members = [p for p in problems if difficulty_bucket(p).label == label]
        alone = scaling.tests_curve(members, sizes=(1, 3), samples=10)
        for size in {p.size for p in alone}:
            assert points(curve, size, label) == pytest.approx(points(alone, size))
    overall = [p for p in curve if p.bucket == ALL_PROBLEMS]
    assert {p.problems for p in overall} == {40}
    # the overall point is the problem-weighted mean of the bucket points
    for size in {p.size for p in overall}:
        weighted = sum(
            p.accuracy * p.problems
            for p in curve
            if p.size == size and p.bucket != ALL_PROBLEMS and p.strategy == "codet"
        )
        assert points(curve, size)["codet"] == pytest.approx(weighted / 40)


def test_curve_is_reproducible() -> None:
    rng = random.Random(2)
    problems = [random_problem(rng, pid) for pid in range(10)]
    assert scaling.tests_curve(problems, samples=7, seed=4) == scaling.tests_curve(
        problems, samples=7, seed=4
    )


@pytest.mark.parametrize("sizes", [(), (0, 1)])
def test_curves_reject_bad_sizes(sizes: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        scaling.tests_curve([TINY], sizes=sizes)
    with pytest.raises(ValueError):
        solutions_curve([TINY], sizes=sizes)


def test_curves_need_problems_and_draws() -> None:
    with pytest.raises(ValueError):
        scaling.tests_curve([])
    with pytest.raises(ValueError):
        solutions_curve([TINY], samples=0)


# ------------------------------------------------------------------ solutions curve

# sample order: s1 passes nothing (wrong), s2 and s3 pass test 1 (correct), s4 passes
# tests 1 and 2 (wrong).
GROWING = problem([c(1), c(2, (1,), True), c(3, (1,), True), c(4, (1, 2))], {1: 1, 2: 1}, 2)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # s1 alone: nothing correct
        (1, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
        # s1, s2: s2 passes most; CodeT ranks s2 alone; MBR-Exec: {} and {1} tie
        (2, (0.5, 1.0, 1.0, 1.0, 1.0, 0.5)),
        # all four: s4 passes 2 tests; CodeT 2*sqrt(1) > 1*sqrt(2); MBR-Exec: {1} twice
        (5, (0.5, 1.0, 0.0, 0.0, 0.0, 1.0)),
    ],
)
def test_solutions_curve_prefix(size: int, expected: tuple[float, ...]) -> None:
    curve = solutions_curve([GROWING], sizes=(1, 2, 5, 10))
    assert sorted({p.size for p in curve}) == [1, 2, 5]
    assert points(curve, size) == pytest.approx(dict(zip(STRATEGIES, expected, strict=True)))
    assert {p.draws for p in curve} == {1}
    assert {p.capped for p in curve if p.size == 5} == {1}


def test_solutions_curve_bootstrap() -> None:
    curve = solutions_curve([GROWING], sizes=(1, 5), samples=2000, mode="bootstrap", seed=1)
    one = points(curve, 1)
    # one sample drawn uniformly: every strategy picks it, half are correct
    assert one["vanilla"] == pytest.approx(0.5, abs=0.05)
    assert one["coderm_majority"] == one["codet"] == one["first_max"] == one["vanilla"]
    assert one["mbr_exec"] == one["vanilla"]
    assert one["oracle"] == one["vanilla"]
    # n >= N: every sample, as the prefix
    assert points(curve, 5) == points(solutions_curve([GROWING], sizes=(1, 5)), 5)
