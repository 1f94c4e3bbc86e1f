"""Run-level aggregation and unit-test quality metrics (pure, no I/O).

Undefined ratios: a ratio whose denominator is 0 (e.g. precision when nothing is
accepted) is ``None``, never 0 or NaN. Means over problems skip ``None`` values
(:func:`mean_defined`) and are ``None`` when no value is defined; reports should
show how many problems a mean covers.

Quality metrics follow the CodeRM paper's appendix D. Both FAR/FRR
definitions are provided under distinct names:

* ``far = FP / (FP + TN)``, ``frr = FN / (FN + TP)``: the rates as the paper's words,
  the CodeRM README and an independent reproduction define them;
* ``far_paper = FP / (FP + TP)``, ``frr_paper = FN / (FN + TN)``: the formulas printed
  in the paper's appendix (really 1 - precision and the false-omission rate).

Everything is counted per solution *sample* (duplicates of one code count each time; a
sample without code is an incorrect solution that passes nothing), as CodeRM indexes
solutions by sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from shared.core.analysis_types import ProblemMatrix
from shared.core.strategies import Candidate, unbiased_pass_at_k, validate


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean of per-problem scores; ``ValueError`` when there are none.

    The sum is exactly rounded (``math.fsum``), so a run's figure does not depend on
    the order in which its problems were scored.
    """
    items = list(values)
    if not items:
        raise ValueError("mean of no values")
    return math.fsum(items) / len(items)


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not ``None``; ``None`` if none is defined."""
    items = [v for v in values if v is not None]
    return math.fsum(items) / len(items) if items else None


def random_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float | None:
    """Random-sample pass@k of a run: ``mean over problems of unbiased_pass_at_k(n, c, k)``.

    ``counts`` holds one ``(n, c)`` a problem: its number of samples and of correct
    samples. As CodeT's ``pass_at_K``, pass@k is only reported when every problem has
    at least k samples: otherwise ``None``. ``ValueError`` on no problems.
    """
    pairs = list(counts)
    if not pairs:
        raise ValueError("no problems")
    if any(n < k for n, _ in pairs):
        return None
    return mean(unbiased_pass_at_k(n, c, k) for n, c in pairs)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Confusion:
    """Counts of one accept/reject classifier against ground truth.

    TP = correct accepted, TN = incorrect rejected, FP = incorrect accepted,
    FN = correct rejected. Ratios are ``None`` when their denominator is 0.
    """

    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.tn + other.tn, self.fp + other.fp, self.fn + other.fn
        )

    @property
    def total(self) -> int:
        return self.tp + self.tn + self.fp + self.fn

    @property
    def accuracy(self) -> float | None:
        """(TP + TN) / (TP + TN + FP + FN)."""
        return _ratio(self.tp + self.tn, self.total)

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """2 P R / (P + R); ``None`` if P or R is undefined, 0 if both are 0."""
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def far(self) -> float | None:
        """False acceptance rate FP / (FP + TN) (share of incorrect solutions accepted)."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def frr(self) -> float | None:
        """False rejection rate FN / (FN + TP) (share of correct solutions rejected)."""
        return _ratio(self.fn, self.fn + self.tp)

    @property
    def far_paper(self) -> float | None:
        """FAR as printed in CodeRM's appendix: FP / (FP + TP) (= 1 - precision)."""
        return _ratio(self.fp, self.fp + self.tp)

    @property
    def frr_paper(self) -> float | None:
        """FRR as printed in CodeRM's appendix: FN / (FN + TN) (false-omission rate)."""
        return _ratio(self.fn, self.fn + self.tn)


def _classify(candidates: Iterable[Candidate], accept: Iterable[bool]) -> Confusion:
    tp = tn = fp = fn = 0
    for cand, accepted in zip(candidates, accept, strict=True):
        if cand.correct:
            tp, fn = (tp + 1, fn) if accepted else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if accepted else (fp, tn + 1)
    return Confusion(tp, tn, fp, fn)


def confusion_per_test(
    candidates: Sequence[Candidate], tests: Iterable[int]
) -> dict[int, Confusion]:
    """One individual test as classifier: it accepts a sample iff the sample passes it."""
    validate(candidates)
    return {t: _classify(candidates, (t in c.passed for c in candidates)) for t in tests}


def confusion_individual(candidates: Sequence[Candidate], tests: Iterable[int]) -> Confusion:
    """Individual tests of one problem, pooled over its (test, sample) pairs.

    ``tests`` are the problem's unique test ids (each counted once). With no tests
    all counts are 0 and every ratio is undefined.
    """
    return sum(confusion_per_test(candidates, tests).values(), Confusion())


def confusion_majority(candidates: Sequence[Candidate]) -> Confusion:
    """Majority voting as classifier (CodeRM appendix D): accept the samples passing the
    largest number of tests among the problem's samples, reject the rest.

    No consistency tie rule here. When no sample passes anything (or there are no
    tests) the maximum is 0 and every sample is accepted.
    """
    validate(candidates)
    top = max(len(c.passed) for c in candidates)
    return _classify(candidates, (len(c.passed) == top for c in candidates))


@dataclass(frozen=True)
class Quality:
    """Quality figures of a classifier over problems (fractions, or ``None``).

    ``far = FP/(FP+TN)`` and ``frr = FN/(FN+TP)`` (the paper's words, its README);
    ``far_paper = FP/(FP+TP)`` and ``frr_paper = FN/(FN+TN)`` (its appendix formulas).
    """

    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    far: float | None
    frr: float | None
    far_paper: float | None
    frr_paper: float | None


_QUALITY_FIELDS = tuple(f.name for f in fields(Quality))


def quality_micro(confusions: Iterable[Confusion]) -> Quality:
    """Pool the counts of all problems, then take the ratios of the pooled counts."""
    return quality_of(sum(confusions, Confusion()))


def quality_macro(confusions: Iterable[Confusion]) -> Quality:
    """Mean over problems of each per-problem ratio, skipping problems where it is
    undefined (:func:`mean_defined`)."""
    items = list(confusions)
    return Quality(
        **{name: mean_defined(getattr(c, name) for c in items) for name in _QUALITY_FIELDS}
    )


def quality_of(confusion: Confusion) -> Quality:
    """The ratios of one confusion table."""
    return Quality(**{name: getattr(confusion, name) for name in _QUALITY_FIELDS})


@dataclass(frozen=True)
class TestQuality:
    """One unique test of a problem as an individual classifier.

    ``weight``: the number of test occurrences that yielded it (it is counted once).
    """

    problem_id: int
    task_id: str
    test_id: int
    weight: int
    confusion: Confusion


@dataclass(frozen=True)
class ProblemQuality:
    """One problem: its tests pooled (individual) and majority voting as classifiers."""

    problem_id: int
    task_id: str
    tests: int
    samples: int
    correct: int
    individual: Confusion
    majority: Confusion


@dataclass(frozen=True)
class QualityReport:
    """Unit-test quality of a run (CodeRM appendix D), every ratio under both FAR/FRR
    definitions (see :class:`Quality`).

    * ``individual_micro``: counts pooled over every (unique test, solution sample)
      pair of the run;
    * ``individual_macro_problem``: mean over problems of the problem's pooled ratios;
    * ``individual_macro_test``: mean over all unique tests of the run of each test's
      ratios;
    * ``majority_micro`` / ``majority_macro``: majority voting pooled over all samples
      of the run / mean over problems of the per-problem ratios.

    Macro means skip undefined per-item ratios (``None`` when none is defined).
    ``per_problem`` and ``per_test`` hold the counts behind them, in input order.
    """

    individual_micro: Quality
    individual_macro_problem: Quality
    individual_macro_test: Quality
    majority_micro: Quality
    majority_macro: Quality
    per_problem: tuple[ProblemQuality, ...]
    per_test: tuple[TestQuality, ...]


def unit_test_quality(problems: Sequence[ProblemMatrix]) -> QualityReport:
    """Unit-test quality of a run, per run, per problem and per test.

    Per problem, each unique test is a classifier accepting the samples that pass it
    (:func:`confusion_per_test`, tests counted once, samples per sample); majority
    voting accepts the samples passing the most tests (:func:`confusion_majority`).
    A problem without tests contributes no individual pairs, and majority voting
    accepts all its samples. Problems with no correct solution keep their counts
    (their recall and FRR are undefined and skipped by macro means).
    """
    per_problem: list[ProblemQuality] = []
    per_test: list[TestQuality] = []
    for p in problems:
        tests = confusion_per_test(p.candidates, p.tests)
        per_test.extend(
            TestQuality(p.problem_id, p.task_id, t, p.test_weights[t], conf)
            for t, conf in tests.items()
        )
        per_problem.append(
            ProblemQuality(
                problem_id=p.problem_id,
                task_id=p.task_id,
                tests=len(tests),
                samples=len(p.candidates),
                correct=sum(1 for c in p.candidates if c.correct),
                individual=sum(tests.values(), Confusion()),
                majority=confusion_majority(p.candidates),
            )
        )
    individual = [q.individual for q in per_problem]
    majority = [q.majority for q in per_problem]
    return QualityReport(
        individual_micro=quality_micro(individual),
        individual_macro_problem=quality_macro(individual),
        individual_macro_test=quality_macro(t.confusion for t in per_test),
        majority_micro=quality_micro(majority),
        majority_macro=quality_macro(majority),
        per_problem=tuple(per_problem),
        per_test=tuple(per_test),
    )
