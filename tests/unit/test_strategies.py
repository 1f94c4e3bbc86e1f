"""Selection strategies and metrics on hand-computed tables."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import astuple

import pytest

from shared.core.metrics import (
    Confusion,
    Quality,
    confusion_individual,
    confusion_majority,
    confusion_per_test,
    mean,
    mean_defined,
    quality_macro,
    quality_micro,
    random_pass_at_k,
)
from shared.core.strategies import (
    Candidate,
    choose_counts,
    coderm_majority_bootstrap,
    coderm_majority_vote,
    coderm_slots,
    codet_dual_agreement,
    codet_pass_at_k,
    codet_rank,
    first_max,
    mbr_exec,
    oracle,
    restrict_tests,
    unbiased_pass_at_k,
    vanilla,
)


def c(sid: int | None, passed: tuple[int, ...] = (), correct: bool = False) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def many(
    times: int, sid: int, passed: tuple[int, ...] = (), correct: bool = False
) -> list[Candidate]:
    """``times`` samples of the same code."""
    return [c(sid, passed, correct)] * times


ONES = {1: 1, 2: 1, 3: 1}

# ------------------------------------------------------------------ pass@k estimator


@pytest.mark.parametrize(
    ("n", "c_", "k", "expected"),
    [
        (5, 2, 1, 0.4),
        (10, 3, 2, 1 - 21 / 45),  # 1 - C(7,2)/C(10,2) = 0.5333...
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 0, 3, 0.0),
        (10, 10, 1, 1.0),
        (4, 2, 3, 1.0),  # n - c < k: any 3 of 4 hold a correct one
        (100, 1, 10, 0.1),
        (100, 0, 100, 0.0),
    ],
)
def test_unbiased_pass_at_k(n: int, c_: int, k: int, expected: float) -> None:
    assert unbiased_pass_at_k(n, c_, k) == pytest.approx(expected, abs=1e-12)
    exact = 1 - math.comb(n - c_, k) / math.comb(n, k)
    assert unbiased_pass_at_k(n, c_, k) == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize(("n", "c_", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_unbiased_pass_at_k_rejects_bad_input(n: int, c_: int, k: int) -> None:
    with pytest.raises(ValueError):
        unbiased_pass_at_k(n, c_, k)


# ------------------------------------------------------------------ vanilla / oracle

MIXED = [c(1, (1,), True), c(1, (1,), True), c(2, (2,)), c(None)]


@pytest.mark.parametrize(
    ("cands", "vanilla_score", "oracle_score", "oracle_chosen"),
    [
        (MIXED, 0.5, 1.0, (1,)),
        ([c(1), c(2), c(None)], 0.0, 0.0, ()),
        ([c(None)], 0.0, 0.0, ()),
        ([*many(3, 7, correct=True), c(8)], 0.75, 1.0, (7,)),
    ],
)
def test_vanilla_and_oracle(
    cands: list[Candidate],
    vanilla_score: float,
    oracle_score: float,
    oracle_chosen: tuple[int, ...],
) -> None:
    assert vanilla(cands).score == pytest.approx(vanilla_score)
    result = oracle(cands)
    assert result.score == oracle_score
    assert result.chosen == oracle_chosen


@pytest.mark.parametrize(
    "cands",
    [
        [],
        [c(None, (1,))],
        [c(None, correct=True)],
        [c(1, (1,), True), c(1, (2,), True)],
        [c(1, (1,), True), c(1, (1,), False)],
    ],
)
def test_invalid_inputs_are_rejected(cands: list[Candidate]) -> None:
    for strategy in (vanilla, oracle, coderm_majority_vote, mbr_exec):
        with pytest.raises(ValueError):
            strategy(cands)
    with pytest.raises(ValueError):
        codet_dual_agreement(cands, ONES)


# ------------------------------------------------------------------ CodeRM majority vote


@pytest.mark.parametrize(
    ("cands", "score", "chosen", "top", "consistency"),
    [
        # most tests first, then the most common passed set among the leaders
        (
            [c(1, (1, 2), True), c(2, (1, 2), True), c(3, (2, 3)), c(4, (1,), True)],
            1.0,
            (1, 2),
            2,
            2,
        ),
        # per sample: 3 copies of solution 2 outvote solution 1 (per unique would be 0.5)
        ([c(1, (1, 2), True), *many(3, 2, (2, 3))], 0.0, (2,), 2, 3),
        # tie in consistency: uniform over both
        ([c(1, (1,), True), c(2, (2,))], 0.5, (1, 2), 1, 1),
        # one passed set, three different codes
        ([c(1, (1, 2), True), c(2, (1, 2)), c(3, (1, 2))], 1 / 3, (1, 2, 3), 2, 3),
        # count beats agreement: one sample passing 3 wins over 5 passing 2
        ([c(1, (1, 2, 3)), *many(5, 2, (1, 2), True)], 0.0, (1,), 3, 1),
        # nothing passes: everyone (no-code samples too) is kept -> random pick
        ([c(1, (), True), c(2), c(None)], 1 / 3, (1, 2), 0, 3),
        # a no-code sample is never kept when someone passes a test
        ([c(None), c(1, (1,), True)], 1.0, (1,), 1, 1),
        # no correct solution
        ([c(1, (1,)), c(2, (1,))], 0.0, (1, 2), 1, 2),
    ],
)
def test_coderm_majority_vote(
    cands: list[Candidate], score: float, chosen: tuple[int, ...], top: int, consistency: int
) -> None:
    result = coderm_majority_vote(cands)
    assert result.score == pytest.approx(score)
    assert result.chosen == chosen
    assert result.detail["top_passed"] == top
    assert result.detail["consistency"] == consistency


def test_restrict_tests_changes_the_vote() -> None:
    cands = [c(1, (1, 2, 3)), *many(2, 2, (1, 3), True)]
    assert coderm_majority_vote(cands).score == 0.0
    restricted = restrict_tests(cands, [1, 3])
    assert restricted[0].passed == frozenset({1, 3})
    assert coderm_majority_vote(restricted).score == pytest.approx(2 / 3)


# ------------------------------------------------------------------ CodeT dual agreement


@pytest.mark.parametrize(
    ("cands", "weights", "score", "chosen", "fallback"),
    [
        # sqrt(5) * 2 = 4.47 beats sqrt(1) * 3
        ([c(1, (1, 2, 3)), *many(5, 2, (1, 2), True)], ONES, 1.0, (2,), "none"),
        # duplicate tests: weights decide between single solutions
        ([c(1, (1,), True), c(2, (2,))], {1: 3, 2: 1}, 1.0, (1,), "none"),
        ([c(1, (1,), True), c(2, (2,))], {1: 1, 2: 3}, 0.0, (2,), "none"),
        # equal scores are merged: uniform over both sets' samples
        ([c(1, (1,), True), c(2, (2,))], {1: 2, 2: 2}, 0.5, (1, 2), "none"),
        # 1 * sqrt(4) == 2 * sqrt(1): merged, 4 of 5 samples correct
        ([*many(4, 1, (1,), True), c(2, (2, 3))], ONES, 0.8, (1, 2), "none"),
        # two codes with one passed set form one consensus set of 4 samples: 2 * 2 > 3 * 1
        (
            [c(1, (1, 2), True), *many(3, 2, (1, 2)), c(3, (1, 2, 3), True)],
            ONES,
            0.25,
            (1, 2),
            "none",
        ),
        # solutions passing nothing are not ranked, however many
        ([c(1, (1,)), *many(10, 2, (), True)], ONES, 0.0, (1,), "none"),
        # no solution passes a test: random pick over all N samples (no-code ones too)
        ([c(1, (), True), *many(2, 2), c(None)], ONES, 0.25, (1, 2), "random"),
        # no tests at all: the same fallback
        ([c(1, (), True), c(2)], {}, 0.5, (1, 2), "random"),
        # no correct solution
        ([c(1, (1,)), c(2, (1, 2))], ONES, 0.0, (2,), "none"),
    ],
)
def test_codet_dual_agreement(
    cands: list[Candidate],
    weights: dict[int, int],
    score: float,
    chosen: tuple[int, ...],
    fallback: str,
) -> None:
    result = codet_dual_agreement(cands, weights)
    assert result.score == pytest.approx(score)
    assert result.chosen == chosen
    assert result.detail["fallback"] == fallback
    assert codet_pass_at_k(cands, weights, 1) == pytest.approx(score)


def test_codet_rank_merges_and_orders() -> None:
    cands = [*many(4, 1, (1,), True), c(2, (2, 3)), c(3, (1, 2, 3)), c(4, (3,))]
    ranking = codet_rank(cands, {1: 1, 2: 1, 3: 2})
    # scores: sol1 1*sqrt(4)=2, sol2 3*1=3, sol3 4*1=4, sol4 2*1=2 -> [4], [3], [2, 2]
    assert [(g.score, g.solution_ids, g.samples, g.correct, g.sets) for g in ranking] == [
        (4.0, (3,), 1, 0, 1),
        (3.0, (2,), 1, 0, 1),
        (2.0, (1, 4), 5, 4, 2),
    ]


@pytest.mark.parametrize("weights", [{1: 1}, {1: 0, 2: 1}])
def test_codet_rejects_bad_weights(weights: dict[int, int]) -> None:
    with pytest.raises(ValueError):
        codet_rank([c(1, (2,))], weights)


@pytest.mark.parametrize(
    ("ranks", "k", "counts"),
    [
        (3, 1, [1]),
        (3, 3, [1, 1, 1]),
        (5, 2, [1, 1]),
        (2, 5, [3, 2]),
        (1, 10, [10]),
        (3, 10, [4, 3, 3]),
    ],
)
def test_choose_counts(ranks: int, k: int, counts: list[int]) -> None:
    assert choose_counts(ranks, k) == counts


# rank 1: {1,2} passed by solutions 1 (correct) and 2 -> 2 * sqrt(2); rank 2: solution 3, score 1
TWO_RANKS = [c(1, (1, 2), True), c(2, (1, 2)), c(3, (1,))]
# ranks: (1 sample, 0 correct) score 3; (2 samples, 1 correct) 2*sqrt(2); (1, 1) score 1
THREE_RANKS = [c(1, (1, 2, 3)), c(2, (1, 2), True), c(3, (1, 2)), c(4, (1,), True)]
NOTHING_PASSES = [*many(2, 1, (), True), *many(3, 2)]


@pytest.mark.parametrize(
    ("cands", "k", "expected"),
    [
        (TWO_RANKS, 1, 0.5),
        (TWO_RANKS, 2, 0.5),  # 1 - 1/2 * 1
        # picks within a rank are with replacement: [2, 1] -> 1 - (1/2)^2, not 1.0
        (TWO_RANKS, 3, 0.75),
        (TWO_RANKS, 4, 0.75),  # [2, 2]
        (THREE_RANKS, 1, 0.0),
        (THREE_RANKS, 2, 0.5),
        (THREE_RANKS, 3, 1.0),
        # fallback: unbiased estimator over all samples, n=5, c=2
        (NOTHING_PASSES, 1, 0.4),
        (NOTHING_PASSES, 2, 0.7),
        (NOTHING_PASSES, 5, 1.0),
    ],
)
def test_codet_pass_at_k(cands: list[Candidate], k: int, expected: float) -> None:
    assert codet_pass_at_k(cands, ONES, k) == pytest.approx(expected)


def test_codet_pass_at_k_fallback_needs_k_samples() -> None:
    with pytest.raises(ValueError):
        codet_pass_at_k(NOTHING_PASSES, ONES, 6)


# ------------------------------------------------------------------ run aggregation


@pytest.mark.parametrize(
    ("counts", "k", "expected"),
    [
        ([(5, 2), (10, 3)], 1, 0.35),
        ([(5, 2), (10, 3)], 2, (0.7 + 1 - 21 / 45) / 2),
        ([(5, 2), (10, 3)], 6, None),  # a problem has fewer than k samples: not reported
        ([(100, 0), (100, 100)], 100, 0.5),
    ],
)
def test_random_pass_at_k(counts: list[tuple[int, int]], k: int, expected: float | None) -> None:
    result = random_pass_at_k(counts, k)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_means() -> None:
    assert mean([1.0, 0.0, 0.5]) == 0.5
    assert mean_defined([None, 1.0, 0.5]) == 0.75
    assert mean_defined([None, None]) is None
    with pytest.raises(ValueError):
        mean([])
    with pytest.raises(ValueError):
        random_pass_at_k([], 1)


# ------------------------------------------------------------------ unit-test quality

RATIOS = ("accuracy", "precision", "recall", "f1", "far", "frr", "far_paper", "frr_paper")


@pytest.mark.parametrize(
    ("confusion", "expected"),
    [
        (Confusion(tp=3, tn=4, fp=1, fn=2), (0.7, 0.75, 0.6, 0.9 / 1.35, 0.2, 0.4, 0.25, 2 / 6)),
        (Confusion(), (None,) * 8),
        # precision and recall both 0 -> F1 0
        (Confusion(tp=0, tn=0, fp=2, fn=1), (0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)),
        # nothing accepted: precision undefined, so F1 too
        (Confusion(tp=0, tn=1, fp=0, fn=2), (1 / 3, None, 0.0, None, 0.0, 1.0, None, 2 / 3)),
    ],
)
def test_confusion_ratios(confusion: Confusion, expected: tuple[float | None, ...]) -> None:
    for name, want in zip(RATIOS, expected, strict=True):
        got = getattr(confusion, name)
        if want is None:
            assert got is None, name
        else:
            assert got == pytest.approx(want), name


QUALITY_CANDS = [c(1, (1, 2), True), c(2, (1,)), c(3, (), True), c(None)]


@pytest.mark.parametrize(
    ("cands", "tests", "individual", "majority"),
    [
        (
            QUALITY_CANDS,
            [1, 2],
            Confusion(tp=2, tn=3, fp=1, fn=2),
            Confusion(tp=1, tn=2, fp=0, fn=1),
        ),
        # duplicates count per sample
        ([*many(2, 1, (1,), True), c(2, (1,))], [1], Confusion(tp=2, fp=1), Confusion(tp=2, fp=1)),
        # no tests: individual has no pairs; majority accepts everyone (max passed = 0)
        ([c(1, (), True), c(2), c(None)], [], Confusion(), Confusion(tp=1, fp=2)),
    ],
)
def test_quality_confusions(
    cands: list[Candidate], tests: list[int], individual: Confusion, majority: Confusion
) -> None:
    assert confusion_individual(cands, tests) == individual
    assert confusion_majority(cands) == majority


def test_confusion_per_test() -> None:
    assert confusion_per_test(QUALITY_CANDS, [1, 2]) == {
        1: Confusion(tp=1, tn=1, fp=1, fn=1),
        2: Confusion(tp=1, tn=2, fp=0, fn=1),
    }


def test_quality_micro_and_macro() -> None:
    a = Confusion(tp=2, tn=0, fp=2, fn=0)
    b = Confusion(tp=0, tn=1, fp=0, fn=1)
    micro = astuple(quality_micro([a, b]))
    # pooled counts (tp=2, tn=1, fp=2, fn=1)
    f1 = 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)
    assert micro == pytest.approx((0.5, 0.5, 2 / 3, f1, 2 / 3, 1 / 3, 0.5, 0.5))
    # per-problem undefined ratios (b's precision, f1, far_paper; a's frr_paper) are skipped
    macro = astuple(quality_macro([a, b]))
    assert macro == pytest.approx((0.5, 0.5, 0.5, 2 / 3, 0.5, 0.5, 0.5, 0.5))
    assert quality_macro([]) == Quality(*(None,) * 8)


# ------------------------------------------------------------------ first-max


@pytest.mark.parametrize(
    ("cands", "score", "chosen", "index"),
    [
        # the first sample among those passing the most tests
        ([c(1, (1, 2), True), c(2, (1, 2, 3)), c(3, (1, 2, 3), True)], 0.0, (2,), 1),
        # a tie on the count is broken by position, not by agreement or correctness
        ([c(1, (1,)), c(2, (2,), True), c(3, (2,), True)], 0.0, (1,), 0),
        ([c(2, (2,), True), c(1, (1,))], 1.0, (2,), 0),
        # duplicates carry no weight: one later sample with more passes wins
        ([*many(3, 2, (1,)), c(1, (1, 2), True)], 1.0, (1,), 3),
        # nothing passes: the first sample, here a no-code one
        ([c(None), c(1, (), True)], 0.0, (), 0),
        # no tests at all: the first sample
        ([c(1, (), True), c(2)], 1.0, (1,), 0),
        # no correct solution
        ([c(1, (1,)), c(2, (1, 2))], 0.0, (2,), 1),
    ],
)
def test_first_max(
    cands: list[Candidate], score: float, chosen: tuple[int, ...], index: int
) -> None:
    result = first_max(cands)
    assert result.score == score
    assert result.chosen == chosen
    assert result.detail["sample_index"] == index


def test_first_max_rejects_invalid_input() -> None:
    with pytest.raises(ValueError):
        first_max([])


# ------------------------------------------------------------------ MBR-Exec


@pytest.mark.parametrize(
    ("cands", "score", "chosen", "agreement", "classes"),
    [
        # the largest class of equal pass vectors wins even though it passes fewer tests
        # (majority voting would pick code 1 alone: 1.0)
        ([c(1, (1, 2), True), c(2, (1,)), c(3, (1,))], 0.0, (2, 3), 2, 2),
        # duplicates count per sample: 3 samples of code 2 outvote codes 1 and 3
        ([c(1, (1,), True), *many(3, 2, (2,)), c(3, (1, 2), True)], 0.0, (2,), 3, 3),
        # ... and 2 samples of a correct code against 1 of a wrong one
        ([*many(2, 1, (1,), True), c(2, (2,))], 1.0, (1,), 2, 2),
        # a tie between classes: uniform over their samples, 2 correct of 3
        ([*many(2, 1, (1,), True), c(2, (2,)), c(3, (2,)), c(4, (3,))], 0.5, (1, 2, 3), 2, 3),
        ([c(1, (1,), True), c(2, (2,)), c(3, (3,), True)], 2 / 3, (1, 2, 3), 1, 3),
        # no tests at all: every sample ties, the random-pick expectation 1/4
        ([c(1, (), True), c(2), c(3), c(None)], 0.25, (1, 2, 3), 4, 1),
        # no-code samples pass nothing and agree with the codes that pass nothing:
        # {} has 3 samples (two no-code, code 2) against 2 for {1}
        ([c(None), c(None), c(2), *many(2, 1, (1,), True)], 0.0, (2,), 3, 2),
        # ... and with one no-code sample fewer the two classes tie: 2 of 4 correct
        ([c(None), c(2), *many(2, 1, (1,), True)], 0.5, (1, 2), 2, 2),
        # only no-code samples
        ([c(None), c(None)], 0.0, (), 2, 1),
    ],
)
def test_mbr_exec(
    cands: list[Candidate],
    score: float,
    chosen: tuple[int, ...],
    agreement: int,
    classes: int,
) -> None:
    result = mbr_exec(cands)
    assert result.score == pytest.approx(score)
    assert result.chosen == chosen
    assert (result.detail["agreement"], result.detail["classes"]) == (agreement, classes)
    kept = result.detail["kept_samples"]
    assert isinstance(kept, int) and result.score == pytest.approx(
        int(result.detail["kept_correct"]) / kept
    )


def test_mbr_exec_ignores_the_number_of_tests_passed() -> None:
    """Renaming the tests changes nothing: only equality of the pass vectors counts."""
    rng = random.Random(4)
    for _ in range(200):
        codes = {
            sid: (frozenset(t for t in range(4) if rng.random() < 0.5), rng.random() < 0.5)
            for sid in range(4)
        }
        cands = [Candidate(sid, *codes[sid]) for sid in rng.choices(range(4), k=6)]
        shifted = [
            Candidate(x.solution_id, frozenset(t + 10 for t in x.passed), x.correct) for x in cands
        ]
        assert mbr_exec(shifted) == mbr_exec(cands)
        counts: dict[frozenset[int], int] = {}
        for x in cands:
            counts[x.passed] = counts.get(x.passed, 0) + 1
        best = max(counts.values())
        kept = [x for x in cands if counts[x.passed] == best]
        assert mbr_exec(cands).score == pytest.approx(sum(x.correct for x in kept) / len(kept))


# ------------------------------------------------------------------ CodeRM bootstrap


class ScriptedDraws(random.Random):
    """A Random whose ``sample`` returns the given slot draws in turn (hand-checkable)."""

    def __init__(self, draws: list[list[int]]) -> None:
        super().__init__(0)
        self.draws = iter(draws)

    def sample(  # type: ignore[override]
        self, population: Sequence[int], k: int, *, counts: Iterable[int] | None = None
    ) -> list[int]:
        drawn = next(self.draws)
        assert len(drawn) == k and set(drawn) <= set(population)
        return drawn


@pytest.mark.parametrize(
    ("tests", "test_samples", "slots"),
    [
        ([2, 1], 4, [1, 2, None, None]),
        # duplicates were kept once: 3 samples of test 1 leave two empty slots
        ([1, 1, 1, 2], 4, [1, 2, None, None]),
        ([], 3, [None, None, None]),
        ([], 0, []),
        # more unique tests than completions (CodeT-style asserts): no empty slot
        ([5, 3, 4], 2, [3, 4, 5]),
    ],
)
def test_coderm_slots(tests: list[int], test_samples: int, slots: list[int | None]) -> None:
    assert coderm_slots(tests, test_samples) == slots


# tests 1, 2 in slots 0, 1; slots 2, 3 empty. With one slot: test 1 -> solution 1
# (correct) alone on top: 1; test 2 -> solution 2: 0; an empty slot -> nobody passes,
# all three kept: 1/3.
BOOT = [c(1, (1,), True), c(2, (2,)), c(3)]


@pytest.mark.parametrize(
    ("draws", "ut_num", "expected"),
    [
        ([[0], [1], [2], [3]], 1, (1 + 0 + 1 / 3 + 1 / 3) / 4),
        ([[0], [0]], 1, 1.0),
        ([[2], [3], [1]], 1, (1 / 3 + 1 / 3 + 0) / 3),
        # two slots: {1, 2} -> solutions 1 and 2 tie (1 test each, consistency 1): 1/2
        ([[0, 1], [2, 0], [3, 2]], 2, (0.5 + 1 + 1 / 3) / 3),
    ],
)
def test_coderm_bootstrap_hand_draws(draws: list[list[int]], ut_num: int, expected: float) -> None:
    result = coderm_majority_bootstrap(BOOT, [1, 2], 4, ut_num, len(draws), ScriptedDraws(draws))
    assert result.score == pytest.approx(expected)
    assert result.detail["exact"] == 0
    assert result.detail["slots"] == 4


def test_coderm_bootstrap_converges_to_the_expectation() -> None:
    # expectation over the 4 equally likely slots: (1 + 0 + 1/3 + 1/3) / 4 = 5/12
    result = coderm_majority_bootstrap(BOOT, [1, 2], 4, 1, 4000, random.Random(7))
    assert result.score == pytest.approx(5 / 12, abs=0.03)


@pytest.mark.parametrize(
    ("cands", "tests", "test_samples", "ut_num", "expected"),
    [
        # ut_num >= slots: every slot, exact, equals plain majority voting
        (BOOT, [1, 2], 4, 4, 0.5),
        (BOOT, [1, 2], 4, 100, 0.5),
        ([c(1, (1, 2), True), *many(3, 2, (2, 3))], [1, 2, 3], 3, 100, 0.0),
        # no tests: everyone kept
        ([c(1, (), True), c(2), c(None)], [], 0, 1, 1 / 3),
        ([c(1, (), True), c(2), c(None)], [], 5, 5, 1 / 3),
    ],
)
def test_coderm_bootstrap_exact(
    cands: list[Candidate], tests: list[int], test_samples: int, ut_num: int, expected: float
) -> None:
    result = coderm_majority_bootstrap(cands, tests, test_samples, ut_num, 100, ScriptedDraws([]))
    assert result.score == pytest.approx(expected)
    assert result.detail["exact"] == 1
    assert result.detail["sample_num"] == 1


@pytest.mark.parametrize(("ut_num", "sample_num"), [(0, 1), (1, 0)])
def test_coderm_bootstrap_rejects_bad_counts(ut_num: int, sample_num: int) -> None:
    with pytest.raises(ValueError):
        coderm_majority_bootstrap(BOOT, [1, 2], 4, ut_num, sample_num, random.Random(0))
