"""Best-of-N selection strategies over one problem's execution results (pure, no I/O).

A problem's input is the list of its solution *samples* in sample order
(:class:`Candidate`); samples whose code is identical share one ``solution_id`` and
so appear several times. Every strategy returns the expected correctness of its pick
(its pass@1 on the problem) in a :class:`StrategyResult`; the run's figure is the mean
over problems (see :mod:`shared.core.metrics`).

Sources followed (read from the released code, re-implemented here):

* CodeT, ``microsoft/CodeT``: ``CodeT/src/agreement.py`` (``DataManager``,
  ``DualAgreement.get_sorted_solutions_without_iter``), ``CodeT/src/evaluation.py``
  (``get_result_of_sorted_solutions``, ``_turn_solution_scores_into_choose_count``,
  ``pass_at_K``, ``_estimator``), ``CodeT/src/execution.py`` and ``CodeT/main.py``.
* CodeRM, ``RUCKBReasoning/CodeRM``: ``evaluation/calculate_result.py``
  (``calc_best_of_n``, ``get_result_on_sol_and_ut``) and
  ``preprocess/extract_unit_test.py`` (tests deduplicated before indexing).
* MBR-Exec: Shi et al., 2022, "Natural Language to Code Translation with Execution"
  (minimum Bayes risk decoding with the hard execution loss), a baseline of CodeRM's
  Table 1; from the paper's definition (no released code read).

A solution's "id" in the sample-order sense (CodeRM's ``sol_id``) is its position in
the candidate sequence, 0-based; ``Candidate.solution_id`` is the stored id of its
(deduplicated) code.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    """One solution sample of a problem.

    ``solution_id`` is ``None`` when the completion yielded no code: such a sample
    still counts in N, is incorrect and passes nothing. ``passed`` holds the ids of
    the problem's unique unit tests the solution passes; ``correct`` is ground truth.
    """

    solution_id: int | None
    passed: frozenset[int] = frozenset()
    correct: bool = False


@dataclass(frozen=True)
class StrategyResult:
    """A strategy's outcome on one problem.

    ``score`` is the expected correctness of the pick, in [0, 1]; ``chosen`` the
    solution ids among which the pick is uniform (over their samples); ``detail``
    strategy-specific figures for reports.
    """

    score: float
    chosen: tuple[int, ...]
    detail: dict[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class RankedGroup:
    """One rank of CodeT's list: consensus sets with the same score, merged.

    ``samples`` counts solution samples (duplicates included), ``correct`` the correct
    ones among them, ``sets`` how many consensus sets were merged into this rank.
    """

    score: float
    solution_ids: tuple[int, ...]
    samples: int
    correct: int
    sets: int


# --------------------------------------------------------------------- helpers


def validate(candidates: Sequence[Candidate]) -> None:
    """Reject inputs no strategy can score.

    Raises ``ValueError`` on an empty list, on a no-code sample that passes tests or
    is marked correct, and on two samples with one ``solution_id`` that disagree on
    ``passed`` or ``correct`` (they are meant to be the same code).
    """
    if not candidates:
        raise ValueError("a problem needs at least one candidate sample")
    seen: dict[int, tuple[frozenset[int], bool]] = {}
    for cand in candidates:
        if cand.solution_id is None:
            if cand.passed or cand.correct:
                raise ValueError("a sample without code can neither pass tests nor be correct")
            continue
        facts = (cand.passed, cand.correct)
        if seen.setdefault(cand.solution_id, facts) != facts:
            raise ValueError(f"solution {cand.solution_id} has inconsistent duplicates")


def sample_counts(candidates: Sequence[Candidate]) -> tuple[int, int]:
    """Return ``(n, c)``: number of samples and number of correct samples."""
    return len(candidates), sum(1 for cand in candidates if cand.correct)


def restrict_tests(candidates: Sequence[Candidate], keep: Iterable[int]) -> list[Candidate]:
    """The same samples seen through a subset of the tests (``passed & keep``).

    CodeRM's ``calculate_result.py`` scores with ``ut_num`` tests drawn without
    replacement from the 100; drawing is the caller's job, this applies a draw.
    """
    kept = frozenset(keep)
    return [Candidate(c.solution_id, c.passed & kept, c.correct) for c in candidates]


def _unique_ids(candidates: Iterable[Candidate]) -> tuple[int, ...]:
    return tuple(sorted({c.solution_id for c in candidates if c.solution_id is not None}))


def unbiased_pass_at_k(n: int, c: int, k: int) -> float:
    """Codex's unbiased pass@k of one problem: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` (no big binomials), and 1.0
    when ``n - c < k`` (every draw of k holds a correct sample). Requires
    ``0 <= c <= n`` and ``1 <= k <= n``, else ``ValueError``.
    Examples: n=5, c=2, k=1 -> 0.4; n=10, c=3, k=2 -> 1 - 21/45 = 0.5333.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


# --------------------------------------------------------------------- baselines


def vanilla(candidates: Sequence[Candidate]) -> StrategyResult:
    """Random pick: ``score = correct samples / N`` (the unbiased pass@1)."""
    validate(candidates)
    n, c = sample_counts(candidates)
    return StrategyResult(c / n, _unique_ids(candidates), {"samples": n, "correct": c})


def oracle(candidates: Sequence[Candidate]) -> StrategyResult:
    """Perfect pick: ``score = 1`` if any sample is correct else ``0`` (pass@N)."""
    validate(candidates)
    correct = _unique_ids(c for c in candidates if c.correct)
    return StrategyResult(1.0 if correct else 0.0, correct, {"correct_solutions": len(correct)})


# --------------------------------------------------------------------- CodeRM


def coderm_majority_vote(candidates: Sequence[Candidate]) -> StrategyResult:
    """CodeRM's majority voting with the consistency tie rule (``calc_best_of_n``).

    Let P[i] be the set of tests sample i passes. Keep the samples with the largest
    |P[i]|; among them the consistency of i is ``#{j kept: P[j] == P[i]}`` (i itself
    included); keep those of maximal consistency;
    ``score = correct kept samples / kept samples``.

    Counted per *sample*, as ``calculate_result.py`` does: it iterates over the
    sample indices 0..sol_num-1, so duplicates of one code both add to a
    consistency and weigh in the final fraction, and a sample without code (no
    result, counted as fail) takes part with P = {}. Hence when no sample passes
    any test (or there are no tests) every sample is kept and the score is the
    random-pick expectation. Tests are counted once each (unique ids, no weights).
    """
    validate(candidates)
    top = max(len(c.passed) for c in candidates)
    tops = [c for c in candidates if len(c.passed) == top]
    consistency = Counter(c.passed for c in tops)
    best = max(consistency.values())
    kept = [c for c in tops if consistency[c.passed] == best]
    n_correct = sum(1 for c in kept if c.correct)
    detail: dict[str, float | int | str] = {
        "top_passed": top,
        "consistency": best,
        "kept_samples": len(kept),
        "kept_correct": n_correct,
    }
    return StrategyResult(n_correct / len(kept), _unique_ids(kept), detail)


# --------------------------------------------------------------------- MBR-Exec


def mbr_exec(candidates: Sequence[Candidate]) -> StrategyResult:
    """MBR-Exec with the hard execution loss (Shi et al., 2022, "Natural Language to
    Code Translation with Execution"): pick the sample whose execution result agrees
    with the most samples.

    ``agreement(i) = #{j : P[j] == P[i]}`` over every sample j (i itself included),
    where P[i] is the set of tests sample i passes; the pick is uniform over the
    samples of maximal agreement, ``score = correct among them / their number``
    (expected correctness).

    The execution result here is the pass/fail vector over the problem's generated
    tests, the only execution signal stored: two solutions with equal outputs on a
    test's input get equal pass bits, so this equality is a coarsening of MBR-Exec's
    output equality (different wrong outputs both read "fail"). Counted per sample
    like the other strategies: duplicates of one code each add to the agreement, and
    a sample without code takes part with P = {} (as in
    :func:`coderm_majority_vote`). Unlike majority voting, the number of tests passed
    plays no part. With no tests every sample has P = {}, all tie, and the score is
    the random-pick expectation ``correct samples / N``.
    """
    validate(candidates)
    agreement = Counter(c.passed for c in candidates)
    best = max(agreement.values())
    kept = [c for c in candidates if agreement[c.passed] == best]
    n_correct = sum(1 for c in kept if c.correct)
    detail: dict[str, float | int | str] = {
        "agreement": best,
        "classes": len(agreement),
        "kept_samples": len(kept),
        "kept_correct": n_correct,
    }
    return StrategyResult(n_correct / len(kept), _unique_ids(kept), detail)


# --------------------------------------------------------------------- CodeT


def codet_rank(
    candidates: Sequence[Candidate], test_weights: Mapping[int, int]
) -> list[RankedGroup]:
    """CodeT's ranked consensus sets, ties merged, best first.

    Follows ``agreement.py``: only solutions passing at least one test enter
    (``passed_unique_solutions``); each unique solution is expanded into as many
    ids as it has samples and each unique test into as many ids as it occurs among
    the (limited) test samples (``test_weights``); expanded solutions with identical
    expanded passed-test lists form a consensus set, scored
    ``len(case_set) * sqrt(len(solution_set))`` =
    ``(sum of weights of the passed tests) * sqrt(samples in the set)``. Sorted by
    score, descending; then ``evaluation._turn_solution_scores_into_choose_count``
    merges sets whose scores are *exactly* equal (float ``==``, the same float
    expression as CodeT's, so e.g. 1*sqrt(4) ties with 2*sqrt(1)). An empty list
    means CodeT has no ranking for the problem (no test passed, or no tests).

    Raises ``ValueError`` on a passed test id missing from ``test_weights`` or a
    weight below 1.
    """
    validate(candidates)
    if any(w < 1 for w in test_weights.values()):
        raise ValueError("test weights are occurrence counts, at least 1")
    frequency = Counter(c.solution_id for c in candidates if c.solution_id is not None and c.passed)
    facts = {c.solution_id: c for c in candidates if c.solution_id in frequency}
    by_case_set: dict[frozenset[int], list[int]] = defaultdict(list)
    for sid in frequency:
        by_case_set[facts[sid].passed].append(sid)
    merged: dict[float, list[tuple[list[int], int, int]]] = defaultdict(list)
    for case_set, sids in by_case_set.items():
        unknown = case_set - test_weights.keys()
        if unknown:
            raise ValueError(f"passed tests without a weight: {sorted(unknown)}")
        samples = sum(frequency[s] for s in sids)
        correct = sum(frequency[s] for s in sids if facts[s].correct)
        score = sum(test_weights[t] for t in case_set) * math.sqrt(samples)
        merged[score].append((sids, samples, correct))
    return [
        RankedGroup(
            score=score,
            solution_ids=tuple(sorted(s for sids, _, _ in sets for s in sids)),
            samples=sum(n for _, n, _ in sets),
            correct=sum(c for _, _, c in sets),
            sets=len(sets),
        )
        for score, sets in sorted(merged.items(), reverse=True)
    ]


def codet_dual_agreement(
    candidates: Sequence[Candidate], test_weights: Mapping[int, int]
) -> StrategyResult:
    """CodeT's dual execution agreement, pass@1 of the problem.

    With the ranking of :func:`codet_rank`, the pick is uniform over the samples of
    the top rank (all sets tied at the top score): ``score = correct / samples`` of
    that rank. If the ranking is empty (no solution passes any test, or no tests)
    CodeT falls back to the random pick: ``score = correct samples / N`` over all N
    samples (``get_result_of_sorted_solutions`` uses ``pass_at_K_by_task`` there),
    ``detail["fallback"] = "random"``.
    """
    ranking = codet_rank(candidates, test_weights)
    if not ranking:
        result = vanilla(candidates)
        return StrategyResult(result.score, result.chosen, {**result.detail, "fallback": "random"})
    top = ranking[0]
    detail: dict[str, float | int | str] = {
        "top_score": top.score,
        "top_samples": top.samples,
        "top_correct": top.correct,
        "tied_sets": top.sets,
        "ranks": len(ranking),
        "fallback": "none",
    }
    return StrategyResult(top.correct / top.samples, top.solution_ids, detail)


def choose_counts(ranks: int, k: int) -> list[int]:
    """How many of the k picks CodeT draws from each rank (best first).

    ``_turn_solution_scores_into_choose_count``: with at least k ranks, one pick from
    each of the top k; with fewer, every rank gets one and the remaining
    ``k - ranks`` picks go round-robin from the top (rank ``i % ranks``).
    """
    if ranks < 1 or k < 1:
        raise ValueError("need at least one rank and k >= 1")
    if ranks >= k:
        return [1] * k
    counts = [1] * ranks
    for i in range(k - ranks):
        counts[i % ranks] += 1
    return counts


def codet_pass_at_k(
    candidates: Sequence[Candidate], test_weights: Mapping[int, int], k: int
) -> float:
    """CodeT's pass@k of the ranked list (``get_result_of_sorted_solutions``).

    With picks per rank m_r from :func:`choose_counts`, each pick uniform over the
    rank's samples *with replacement* (CodeT raises the rank's miss probability to
    the power m_r):
    ``pass@k = 1 - prod_r ((samples_r - correct_r) / samples_r) ** m_r``.
    Without a ranking, the random-pick estimate :func:`unbiased_pass_at_k` over all
    N samples (CodeT's fallback); it raises ``ValueError`` when ``k > N``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    ranking = codet_rank(candidates, test_weights)
    if not ranking:
        return unbiased_pass_at_k(*sample_counts(candidates), k)
    all_wrong = 1.0
    for rank, picks in zip(ranking, choose_counts(len(ranking), k), strict=False):
        all_wrong *= ((rank.samples - rank.correct) / rank.samples) ** picks
    return 1.0 - all_wrong


# --------------------------------------------------------------------- first-max


def first_max(candidates: Sequence[Candidate]) -> StrategyResult:
    """Argmax of tests passed, first index wins: a deterministic pick.

    ``i* = min{i : |P[i]| = max_j |P[j]|}`` where i is the sample position (0-based,
    sample order) and tests are counted once each (unique ids, as CodeRM counts);
    ``score = 1`` if sample i* is correct else ``0``. When nothing passes any test the
    first sample is picked (a no-code sample included). ``chosen`` is the picked
    sample's solution id, empty for a no-code sample; ``detail["sample_index"] = i*``.
    """
    validate(candidates)
    top = max(len(c.passed) for c in candidates)
    index = next(i for i, c in enumerate(candidates) if len(c.passed) == top)
    pick = candidates[index]
    chosen = () if pick.solution_id is None else (pick.solution_id,)
    detail: dict[str, float | int | str] = {"sample_index": index, "top_passed": top}
    return StrategyResult(1.0 if pick.correct else 0.0, chosen, detail)


# --------------------------------------------------------------------- CodeRM bootstrap


def coderm_slots(tests: Iterable[int], test_samples: int) -> list[int | None]:
    """CodeRM's test index space: slot j holds the j-th unique test (sorted ids) for
    j < U, and nothing (a test failed by every solution) for U <= j < test_samples.

    ``calculate_result.py`` draws from ``range(100)`` (one index a test completion)
    after ``extract_unit_test.py`` kept each distinct test once and dropped
    completions without one, so a duplicate or an empty completion becomes an empty
    index. With more unique tests than ``test_samples`` (CodeT-style completions that
    yield several asserts) there are U slots.
    """
    unique: list[int | None] = [*sorted(set(tests))]
    return unique + [None] * max(0, test_samples - len(unique))


def coderm_majority_bootstrap(
    candidates: Sequence[Candidate],
    tests: Iterable[int],
    test_samples: int,
    ut_num: int,
    sample_num: int,
    rng: random.Random,
) -> StrategyResult:
    """CodeRM majority voting with ``ut_num`` test completions drawn per repetition.

    Over the slots of :func:`coderm_slots` (S = max(test_samples, U)), each of the
    ``sample_num`` repetitions draws ``rng.sample(range(S), ut_num)`` (without
    replacement) and scores :func:`coderm_majority_vote` with the unique tests in
    the drawn slots; ``score = mean over repetitions``. Drawn empty slots take up a
    draw but cannot change the ranking. When ``ut_num >= S`` every slot is drawn:
    the result is exact and ``rng`` is not used (``detail["exact"] = 1``, ``chosen``
    as :func:`coderm_majority_vote`); otherwise ``chosen`` is empty (the pick varies
    with the draw). ``ValueError`` for ``ut_num < 1`` or ``sample_num < 1``.
    """
    if ut_num < 1 or sample_num < 1:
        raise ValueError("ut_num and sample_num must be at least 1")
    slots = coderm_slots(tests, test_samples)
    detail: dict[str, float | int | str] = {
        "ut_num": ut_num,
        "slots": len(slots),
        "exact": int(ut_num >= len(slots)),
    }
    if ut_num >= len(slots):
        full = coderm_majority_vote(restrict_tests(candidates, (t for t in slots if t is not None)))
        return StrategyResult(full.score, full.chosen, {**detail, "sample_num": 1})
    validate(candidates)
    scores = []
    for _ in range(sample_num):
        drawn = (slots[j] for j in rng.sample(range(len(slots)), ut_num))
        kept = [t for t in drawn if t is not None]
        scores.append(coderm_majority_vote(restrict_tests(candidates, kept)).score)
    return StrategyResult(math.fsum(scores) / sample_num, (), {**detail, "sample_num": sample_num})
