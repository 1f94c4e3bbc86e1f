"""Paired bootstrap confidence intervals for the difference of two runs (pure, no I/O).

Two runs A and B are compared on the problems both scored (matched by task id). Every
metric of ``coderm compare`` is a mean over problems of a per-problem value
(:func:`problem_values`), so its difference ``delta = A - B`` is a statistic of the
common problems, and its sampling noise is estimated by resampling them:

* **Problems (always).** The common problems are put in task-id order (plain string
  order) and numbered ``0..P-1``. One generator,
  ``rng = numpy.random.default_rng(seed)``, draws
  ``indices = rng.integers(0, P, size=(resamples, P))``: row ``r`` is the r-th resample
  of the problems, with replacement. The *same* rows are used for both runs (the
  bootstrap is paired: a problem drawn twice counts twice in A and in B) and for every
  metric. A resample's delta is ``mean(A's values of the drawn problems) - mean(B's)``,
  undefined values (``None``, e.g. a precision where a problem's tests accept nothing)
  skipped on each side, as the run's figure skips them; a resample where a side has no
  defined value at all is left out (counted in ``Interval.undefined``).
* **Solutions and tests (optional, ``inner > 0``).** A strategy's per-problem figure is
  itself an expectation over the run's sampled solutions and tests (vanilla's ``c/n``,
  a pick averaged over tied candidates, CodeT's pass@k), and those samples are random
  too. With ``inner = R`` each problem of each run gets a pool of R re-scored copies
  (:func:`resample_problem`: its solution samples drawn with replacement, its test
  occurrences drawn with replacement), seeded by
  ``numpy.random.default_rng([seed, side, index])`` (side 0 for A, 1 for B, index the
  problem's position in task-id order). After drawing ``indices``, the same ``rng``
  draws ``picks_a = rng.integers(0, R, size=(resamples, P))`` and then ``picks_b``
  likewise: a drawn problem contributes the copy its pick names instead of its observed
  value. This is a two-level bootstrap with a finite pool of inner replicates; the two
  runs' samples are resampled independently, which overstates the noise of the delta
  when both runs share completions. Resampling with replacement loses distinct samples,
  so some figures (the oracle's, any pick among few correct samples) are biased down
  in the copies; the bias mostly cancels in a delta when both runs have as many samples
  a problem, not otherwise. Without ``inner`` the per-problem figures are taken as
  exact: the interval then covers which problems were asked, not which solutions and
  tests happened to be sampled for them, and is narrower when those are few.

The interval is the percentile interval of the resampled deltas:
``numpy.quantile(deltas, [(1 - level) / 2, (1 + level) / 2])`` (numpy's default linear
interpolation), around the observed delta (the difference of the two runs' figures,
not of the resamples' mean). Values are in percent and deltas in percentage points.

The verdict reads the interval at its level: ``"better"`` when it lies entirely on
A's good side of zero (above it for a figure where higher is better, below it for a
rate of errors such as FAR), ``"worse"`` when it lies entirely on the other side,
``"within noise"`` when it holds zero. Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from shared.core.analysis import strategy_order
from shared.core.analysis_types import ProblemMatrix
from shared.core.metrics import Confusion, confusion_individual, confusion_majority, mean_defined
from shared.core.scoring import PASS_AT_K, score_problem
from shared.core.strategies import Candidate, unbiased_pass_at_k

Verdict = Literal["better", "worse", "within noise"]
Values = Sequence[float | None]
"""One value a problem (percent; ``None`` where the problem does not define it)."""

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0

#: Unit-test quality figures compared, as :class:`~shared.core.metrics.Confusion`
#: names them; each is a macro mean over problems of the per-problem ratio.
QUALITY_FIGURES = ("accuracy", "precision", "recall", "f1", "far")
#: The classifiers of the quality figures: ``individual`` (each unique test accepts the
#: samples passing it, pairs pooled per problem), ``majority`` (majority voting).
QUALITY_CLASSIFIERS = ("individual", "majority")
#: Figures where a lower value is better (rates of errors).
LOWER_IS_BETTER = frozenset({"far"})


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are computed: ``level`` in (0, 1), ``resamples`` of the problems
    (at least 1), the generator's ``seed`` (at least 0), ``inner`` re-scored copies of
    each problem a run (0: no resampling of solutions and tests)."""

    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    inner: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"the level is a fraction in (0, 1), e.g. 0.95: {self.level}")
        if self.resamples < 1:
            raise ValueError(f"need at least one resample: {self.resamples}")
        if self.seed < 0:
            raise ValueError(f"the seed is a non-negative integer: {self.seed}")
        if self.inner < 0:
            raise ValueError(f"inner copies are a non-negative number: {self.inner}")


DEFAULT_BOOTSTRAP = Bootstrap()


@dataclass(frozen=True)
class Interval:
    """One metric of A against B on the common problems.

    ``a``, ``b``: each run's figure (mean over problems, percent; ``None`` when no
    problem defines it); ``delta = a - b`` (percentage points); ``low``, ``high``: the
    percentile interval at ``level`` (``None`` when no resample defines the delta);
    ``verdict`` (``None`` without an interval); ``problems``: the common problems;
    ``resamples``: the resamples drawn, ``undefined``: how many of them were left out
    because a side had no defined value; ``seed`` and ``inner`` as :class:`Bootstrap`.
    ``higher_is_better``: which side of zero is A's good side.
    """

    metric: str
    higher_is_better: bool
    a: float | None
    b: float | None
    delta: float | None
    low: float | None
    high: float | None
    level: float
    verdict: Verdict | None
    problems: int
    resamples: int
    undefined: int
    seed: int
    inner: int


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (false for error rates)."""
    return metric.rpartition(".")[2] not in LOWER_IS_BETTER


def verdict(low: float, high: float, higher_better: bool = True) -> Verdict:
    """``"better"`` when ``[low, high]`` lies strictly on A's good side of zero,
    ``"worse"`` when strictly on the other side, else ``"within noise"``."""
    if low > 0.0:
        return "better" if higher_better else "worse"
    if high < 0.0:
        return "worse" if higher_better else "better"
    return "within noise"


def regressed(interval: Interval, threshold: float = 0.0) -> bool:
    """Whether A is significantly worse than B by more than ``threshold`` (in the
    metric's unit, percentage points): the interval's upper bound lies below
    ``-threshold`` (its lower bound above ``+threshold`` for an error rate). An
    interval that is undefined never counts as a regression."""
    if interval.low is None or interval.high is None:
        return False
    if interval.higher_is_better:
        return interval.high < -threshold
    return interval.low > threshold


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _quality(confusion: Confusion, figure: str) -> float | None:
    value: float | None = getattr(confusion, figure)
    return _percent(value)


def problem_values(problem: ProblemMatrix) -> dict[str, float | None]:
    """Every metric's value on one problem, in percent, keyed by metric name.

    ``<strategy>.pass@1``: the strategy's expected correctness of its pick
    (:func:`~shared.core.scoring.score_problem`); ``vanilla.pass@<k>``: the unbiased
    random-sample pass@k, for k up to the problem's samples; ``codet.pass@<k>``:
    CodeT's pass@k, where the scorer computes it; ``<classifier>.<figure>`` for the
    classifiers of :data:`QUALITY_CLASSIFIERS` and the figures of
    :data:`QUALITY_FIGURES` (``None`` where the ratio is undefined). The means over
    problems of these are the figures of the run's report.
    """
    results = score_problem(problem.candidates, problem.test_weights)
    out: dict[str, float | None] = {f"{s}.pass@1": 100.0 * r.score for s, r in results.items()}
    n = len(problem.candidates)
    c = sum(1 for cand in problem.candidates if cand.correct)
    for k in PASS_AT_K[1:]:
        if k <= n:
            out[f"vanilla.pass@{k}"] = 100.0 * unbiased_pass_at_k(n, c, k)
        codet = results["codet"].detail.get(f"pass@{k}")
        if isinstance(codet, float | int) and not isinstance(codet, bool):
            out[f"codet.pass@{k}"] = 100.0 * float(codet)
    classifiers = {
        "individual": confusion_individual(problem.candidates, problem.tests),
        "majority": confusion_majority(problem.candidates),
    }
    for name in QUALITY_CLASSIFIERS:
        for figure in QUALITY_FIGURES:
            out[f"{name}.{figure}"] = _quality(classifiers[name], figure)
    return out


def metric_order(metric: str) -> tuple[int, tuple[int, str], int, str]:
    """Sort key: strategies (table order, then k), then the quality figures."""
    head, _, tail = metric.partition(".")
    if head in QUALITY_CLASSIFIERS:
        figure = QUALITY_FIGURES.index(tail) if tail in QUALITY_FIGURES else len(QUALITY_FIGURES)
        return (1, (QUALITY_CLASSIFIERS.index(head), ""), figure, tail)
    k = tail.partition("@")[2]
    return (0, strategy_order(head), int(k) if k.isdigit() else 0, tail)


def run_values(problems: Sequence[ProblemMatrix]) -> dict[str, list[float | None]]:
    """Per-problem values of a run (:func:`problem_values`), one list a metric in the
    problems' order. A pass@k metric is kept only when every problem defines it (as
    the run's metrics report pass@k); quality figures are kept with their ``None``."""
    per_problem = [problem_values(p) for p in problems]
    names = set.intersection(*(set(v) for v in per_problem)) if per_problem else set()
    return {name: [v[name] for v in per_problem] for name in sorted(names, key=metric_order)}


def resample_problem(problem: ProblemMatrix, rng: np.random.Generator) -> ProblemMatrix:
    """A copy of ``problem`` with its solution samples and test occurrences drawn with
    replacement, for the inner level of the bootstrap.

    Solutions: N sample positions drawn with replacement, kept in ascending order
    (first-max still prefers an earlier sample). Tests: one slot per test occurrence
    (``test_weights[t]`` slots for test t) plus ``test_samples - sum(weights)`` empty
    slots when positive; as many slots as there are drawn with replacement, a test's
    new weight the number of its slots drawn; tests never drawn are dropped and the
    samples see only the kept ones. Occurrences are treated as independent (an assert
    completion's several tests are not kept together).
    """
    n = len(problem.candidates)
    positions = np.sort(rng.integers(0, n, size=n))
    slot_test = [t for t in problem.tests for _ in range(problem.test_weights[t])]
    slots = max(len(slot_test), problem.test_samples)
    drawn: Counter[int] = Counter()
    if slots:
        for j in rng.integers(0, slots, size=slots):
            if j < len(slot_test):
                drawn[slot_test[j]] += 1
    kept = frozenset(drawn)
    candidates = tuple(
        Candidate(c.solution_id, c.passed & kept, c.correct)
        for c in (problem.candidates[int(i)] for i in positions)
    )
    return ProblemMatrix(
        problem_id=problem.problem_id,
        task_id=problem.task_id,
        candidates=candidates,
        test_weights=dict(drawn),
        test_samples=problem.test_samples,
    )


def inner_pool(
    problems: Sequence[ProblemMatrix], copies: int, seed: int, side: int
) -> list[list[dict[str, float | None]]]:
    """``copies`` re-scored resamples (:func:`resample_problem`) of each problem, the
    generator of problem ``i`` seeded ``[seed, side, i]``: ``pool[i][r]`` maps metric
    names to values as :func:`problem_values`."""
    pool = []
    for index, problem in enumerate(problems):
        rng = np.random.default_rng([seed, side, index])
        pool.append([problem_values(resample_problem(problem, rng)) for _ in range(copies)])
    return pool


def _array(values: Values) -> NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _means(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row means of a (resamples, P) array skipping NaN; NaN for a row without values."""
    defined = ~np.isnan(values)
    sums = np.where(defined, values, 0.0).sum(axis=1)
    counts = defined.sum(axis=1)
    out = np.full(values.shape[0], np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def interval(
    metric: str,
    a: Values,
    b: Values,
    spec: Bootstrap = DEFAULT_BOOTSTRAP,
    *,
    inner_a: Sequence[Values] | None = None,
    inner_b: Sequence[Values] | None = None,
) -> Interval:
    """The paired bootstrap interval of ``mean(a) - mean(b)``.

    ``a`` and ``b`` hold one value a common problem, in the same order (percent,
    ``None`` where undefined). Problems are resampled as the module says; with
    ``inner_a`` and ``inner_b`` (one sequence of ``spec.inner`` re-scored values a
    problem) a drawn problem contributes a picked copy instead of its value.
    ``ValueError`` when the lengths differ or there is no problem.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need one value a problem in both runs: {len(a)} and {len(b)}")
    problems = len(a)
    if bool(spec.inner) != (inner_a is not None and inner_b is not None):
        raise ValueError("inner copies of both runs go with spec.inner > 0, and only with it")
    if inner_a is not None and inner_b is not None:
        shapes = {(len(inner_a), spec.inner), (len(inner_b), spec.inner)}
        shapes |= {(problems, len(c)) for c in (*inner_a, *inner_b)}
        if shapes != {(problems, spec.inner)}:
            raise ValueError(f"need {spec.inner} inner copies of each of the {problems} problems")
    better = higher_is_better(metric)
    mean_a, mean_b = mean_defined(a), mean_defined(b)
    delta = None if mean_a is None or mean_b is None else mean_a - mean_b
    rng = np.random.default_rng(spec.seed)
    indices = rng.integers(0, problems, size=(spec.resamples, problems), dtype=np.int64)
    if inner_a is not None and inner_b is not None:
        picks_a = rng.integers(0, spec.inner, size=indices.shape, dtype=np.int64)
        picks_b = rng.integers(0, spec.inner, size=indices.shape, dtype=np.int64)
        drawn_a = np.array([_array(copies) for copies in inner_a])[indices, picks_a]
        drawn_b = np.array([_array(copies) for copies in inner_b])[indices, picks_b]
    else:
        drawn_a, drawn_b = _array(a)[indices], _array(b)[indices]
    deltas = _means(drawn_a) - _means(drawn_b)
    defined = deltas[~np.isnan(deltas)]
    low = high = None
    if defined.size:
        bounds = [(1.0 - spec.level) / 2, (1.0 + spec.level) / 2]
        low, high = (float(q) for q in np.quantile(defined, bounds))
    return Interval(
        metric=metric,
        higher_is_better=better,
        a=mean_a,
        b=mean_b,
        delta=delta,
        low=low,
        high=high,
        level=spec.level,
        verdict=None if low is None or high is None else verdict(low, high, better),
        problems=problems,
        resamples=spec.resamples,
        undefined=spec.resamples - int(defined.size),
        seed=spec.seed,
        inner=spec.inner,
    )


def _pooled(pool: list[list[dict[str, float | None]]], metric: str) -> list[list[float | None]]:
    return [[copy.get(metric) for copy in copies] for copies in pool]


def compare_significance(
    problems_a: Sequence[ProblemMatrix],
    problems_b: Sequence[ProblemMatrix],
    spec: Bootstrap = DEFAULT_BOOTSTRAP,
) -> list[Interval]:
    """An :class:`Interval` for every metric both runs define, on their common problems.

    Problems are matched by task id and taken in task-id order; the metrics are those
    of :func:`run_values` (strategies in table order, then the quality figures).
    Empty when the runs share no problem.
    """
    by_task_b = {p.task_id: p for p in problems_b}
    common = sorted({p.task_id for p in problems_a} & by_task_b.keys())
    if not common:
        return []
    by_task_a = {p.task_id: p for p in problems_a}
    mine = [by_task_a[t] for t in common]
    theirs = [by_task_b[t] for t in common]
    values_a, values_b = run_values(mine), run_values(theirs)
    pool_a = inner_pool(mine, spec.inner, spec.seed, 0) if spec.inner else None
    pool_b = inner_pool(theirs, spec.inner, spec.seed, 1) if spec.inner else None
    return [
        interval(
            metric,
            values_a[metric],
            values_b[metric],
            spec,
            inner_a=None if pool_a is None else _pooled(pool_a, metric),
            inner_b=None if pool_b is None else _pooled(pool_b, metric),
        )
        for metric in sorted(values_a.keys() & values_b.keys(), key=metric_order)
    ]
