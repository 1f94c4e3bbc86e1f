"""One run's analysis, composed from the pure scorer functions (pure, no I/O).

:func:`analyse_run` turns a run's :class:`ProblemMatrix` list into a
:class:`RunAnalysis`: the strategy table (with the vanilla and oracle bounds), the
unit-test quality tables, scaling curves over tests and solutions (overall and per
difficulty decile), test-budget allocation curves, and one row per problem. Every
field is plain data (numbers, strings, lists, dicts), so :func:`as_dict` is JSON.

Figures follow the scorer exactly: the strategy table is
:func:`~shared.core.scoring.run_metrics` of
:func:`~shared.core.scoring.score_problem` on each matrix, so for a run scored by
the current code it equals the stored ``run_metrics``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.core import allocation, scaling
from shared.core.analysis_types import AllocationPoint, CurvePoint, ProblemMatrix
from shared.core.coderm_reference import ReferenceFigure, ReferenceParams, reference_figure
from shared.core.metrics import Quality, QualityReport, unit_test_quality
from shared.core.scoring import ProblemScore, run_metrics, score_problem
from shared.core.strategies import StrategyResult

STRATEGY_LABELS = {
    "vanilla": "random pick (vanilla)",
    "oracle": "oracle (any correct)",
    "coderm_majority": "CodeRM majority voting",
    "codet": "CodeT dual agreement",
    "mbr_exec": "MBR-Exec (most agreeing pass vector)",
    "first_max": "first max (first sample with most passes)",
}
BOUNDS = {"vanilla": "lower bound", "oracle": "upper bound"}

#: What each FAR/FRR name means; both definitions are kept under distinct names.
QUALITY_DEFINITIONS = {
    "far": "FP / (FP + TN): share of incorrect solutions accepted (paper's text, README)",
    "frr": "FN / (FN + TP): share of correct solutions rejected (paper's text, README)",
    "far_paper": "FP / (FP + TP): FAR as printed in CodeRM appendix D (1 - precision)",
    "frr_paper": "FN / (FN + TN): FRR as printed in CodeRM appendix D (false omission rate)",
}
GroundTruthState = Literal["available", "partial", "unavailable"]
Points = list[dict[str, Any]]


@dataclass(frozen=True)
class StrategyRow:
    """One strategy: ``metrics`` maps ``"pass@k"`` to percent over ``problems``.

    ``role`` is ``"lower bound"`` (vanilla), ``"upper bound"`` (oracle) or
    ``"selection"``.
    """

    strategy: str
    label: str
    role: str
    metrics: dict[str, float]
    problems: int


@dataclass(frozen=True)
class QualityRow:
    """One classifier under one averaging, in percent (``None`` where undefined)."""

    classifier: str
    averaging: str
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    far: float | None
    frr: float | None
    far_paper: float | None
    frr_paper: float | None


@dataclass(frozen=True)
class ProblemRow:
    """One labelled problem: sample counts, each strategy's expected correctness of
    its pick (in [0, 1]), and the selection strategies whose pick is surely wrong
    (score 0) although a correct sample exists."""

    problem_id: int
    task_id: str
    n: int
    correct: int
    pass_rate: float
    bucket: str
    unique_solutions: int
    tests: int
    test_samples: int
    scores: dict[str, float]
    wrong: list[str]
    individual_accuracy: float | None
    majority_accuracy: float | None


@dataclass(frozen=True)
class UnlabelledRow:
    """A problem without ground truth: only what the matrix says."""

    problem_id: int
    task_id: str
    n: int
    unique_solutions: int
    tests: int
    test_samples: int
    passing_pairs: int


@dataclass(frozen=True)
class RunAnalysis:
    """Everything a report shows about a run (JSON-serialisable, see :func:`as_dict`).

    ``ground_truth``: ``"available"`` (every problem labelled), ``"partial"`` or
    ``"unavailable"``; correctness figures cover the labelled problems only.
    ``base_strategies``: the strategy table under base-input verdicts only, when the
    benchmark has them (evalplus), else ``None``. Curve and allocation points are
    :class:`~shared.core.analysis_types.CurvePoint` /
    :class:`~shared.core.analysis_types.AllocationPoint` as dicts.
    ``coderm_reference``: CodeRM's majority-voting figure as ``calculate_result.py``
    computes it (:mod:`shared.core.coderm_reference`), when requested.
    """

    problems: int
    ground_truth: GroundTruthState
    strategies: list[StrategyRow]
    base_strategies: list[StrategyRow] | None
    quality: list[QualityRow]
    quality_definitions: dict[str, str]
    tests_curve: list[dict[str, Any]]
    solutions_curve: list[dict[str, Any]]
    allocation_curve: list[dict[str, Any]]
    curve_draws: int
    problem_rows: list[ProblemRow]
    unlabelled: list[UnlabelledRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    coderm_reference: ReferenceFigure | None = None


def strategy_order(strategy: str) -> tuple[int, str]:
    """Sort key: the known strategies in table order, then others by name."""
    names = list(STRATEGY_LABELS)
    return (names.index(strategy) if strategy in names else len(names), strategy)


def strategy_table(metrics: Mapping[str, tuple[float, int]]) -> list[StrategyRow]:
    """Group ``<strategy>.pass@<k>`` metrics into one row a strategy, bounds first."""
    grouped: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for name, (value, problems) in metrics.items():
        strategy, _, metric = name.rpartition(".")
        grouped.setdefault(strategy, {})[metric] = value
        counts[strategy] = max(counts.get(strategy, 0), problems)
    return [
        StrategyRow(
            strategy=strategy,
            label=STRATEGY_LABELS.get(strategy, strategy),
            role=BOUNDS.get(strategy, "selection"),
            metrics=dict(sorted(grouped[strategy].items(), key=lambda kv: _k(kv[0]))),
            problems=counts[strategy],
        )
        for strategy in sorted(grouped, key=strategy_order)
    ]


def _k(metric: str) -> int:
    _, _, k = metric.partition("@")
    return int(k) if k.isdigit() else 0


def _scores(problems: Sequence[ProblemMatrix]) -> list[dict[str, StrategyResult]]:
    return [score_problem(p.candidates, p.test_weights) for p in problems]


def _metrics(results: Iterable[dict[str, StrategyResult]]) -> dict[str, tuple[float, int]]:
    return run_metrics(
        ProblemScore(name, result.score, result.detail)
        for per_problem in results
        for name, result in per_problem.items()
    )


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _quality_row(classifier: str, averaging: str, quality: Quality) -> QualityRow:
    return QualityRow(
        classifier,
        averaging,
        **{f.name: _percent(getattr(quality, f.name)) for f in dataclasses.fields(Quality)},
    )


def quality_rows(report: QualityReport) -> list[QualityRow]:
    """The run-level rows of a quality report (individual tests, majority voting)."""
    return [
        _quality_row("individual tests", "micro (pooled pairs)", report.individual_micro),
        _quality_row("individual tests", "macro over problems", report.individual_macro_problem),
        _quality_row("individual tests", "macro over tests", report.individual_macro_test),
        _quality_row("majority voting", "micro (pooled samples)", report.majority_micro),
        _quality_row("majority voting", "macro over problems", report.majority_macro),
    ]


def _unique(problem: ProblemMatrix) -> int:
    return len({c.solution_id for c in problem.candidates if c.solution_id is not None})


def _problem_row(
    problem: ProblemMatrix, results: Mapping[str, StrategyResult], report: QualityReport, i: int
) -> ProblemRow:
    n = len(problem.candidates)
    correct = sum(1 for c in problem.candidates if c.correct)
    scores = {name: results[name].score for name in sorted(results, key=strategy_order)}
    wrong = [
        name for name, score in scores.items() if name not in BOUNDS and correct and score == 0.0
    ]
    quality = report.per_problem[i]
    return ProblemRow(
        problem_id=problem.problem_id,
        task_id=problem.task_id,
        n=n,
        correct=correct,
        pass_rate=correct / n,
        bucket=scaling.difficulty_bucket(problem).label,
        unique_solutions=_unique(problem),
        tests=len(problem.test_weights),
        test_samples=problem.test_samples,
        scores=scores,
        wrong=wrong,
        individual_accuracy=_percent(quality.individual.accuracy),
        majority_accuracy=_percent(quality.majority.accuracy),
    )


def _unlabelled_row(problem: ProblemMatrix) -> UnlabelledRow:
    return UnlabelledRow(
        problem_id=problem.problem_id,
        task_id=problem.task_id,
        n=len(problem.candidates),
        unique_solutions=_unique(problem),
        tests=len(problem.test_weights),
        test_samples=problem.test_samples,
        passing_pairs=sum(len(c.passed) for c in problem.candidates),
    )


def _ground_truth(labelled: int, unlabelled: int) -> GroundTruthState:
    if not unlabelled:
        return "available"
    return "partial" if labelled else "unavailable"


def analyse_run(
    problems: Sequence[ProblemMatrix],
    *,
    base_problems: Sequence[ProblemMatrix] | None = None,
    unlabelled: Sequence[ProblemMatrix] = (),
    curve_draws: int = 20,
    seed: int = 0,
    curves: bool = True,
    reference: ReferenceParams | None = None,
) -> RunAnalysis:
    """Analyse a run's labelled problems (``problems``), plus base-input verdicts of
    the same problems (``base_problems``) and problems without ground truth.

    Scaling curves draw ``curve_draws`` test subsets a size from ``seed``
    (:func:`~shared.core.scaling.tests_curve`, slots over test samples) and use the
    first n solution samples (:func:`~shared.core.scaling.solutions_curve`,
    CodeRM's prefix); ``curves=False`` skips them and the allocation curve (e.g. for
    comparisons). With ``reference``, CodeRM's ``calculate_result.py`` figure over the
    labelled problems (:func:`~shared.core.coderm_reference.reference_figure`).
    """
    notes: list[str] = []
    state = _ground_truth(len(problems), len(unlabelled))
    if state == "unavailable":
        notes.append(
            "ground truth unavailable: no hidden tests for these problems, so no "
            "correctness figures (strategies, test quality, curves) are reported"
        )
    elif state == "partial":
        notes.append(
            f"ground truth unavailable for {len(unlabelled)} problems: correctness "
            f"figures cover the {len(problems)} labelled problems only"
        )
    results = _scores(problems)
    quality = unit_test_quality(problems) if problems else None
    base = strategy_table(_metrics(_scores(base_problems))) if base_problems else None
    tests, solutions, budget = _curves(problems, curve_draws, seed) if curves else ([], [], [])
    return RunAnalysis(
        problems=len(problems),
        ground_truth=state,
        strategies=strategy_table(_metrics(results)) if problems else [],
        base_strategies=base,
        quality=quality_rows(quality) if quality else [],
        quality_definitions=dict(QUALITY_DEFINITIONS),
        tests_curve=tests,
        solutions_curve=solutions,
        allocation_curve=budget,
        curve_draws=curve_draws if tests else 0,
        problem_rows=[
            _problem_row(p, r, quality, i)
            for i, (p, r) in enumerate(zip(problems, results, strict=True))
        ]
        if quality
        else [],
        unlabelled=[_unlabelled_row(p) for p in unlabelled],
        notes=notes,
        coderm_reference=reference_figure(problems, reference) if reference and problems else None,
    )


#: The paper's test counts, then larger ones so that the curve ends at every test of
#: the problems (CodeT-style runs have hundreds of assert slots a problem).
FULL_TEST_SIZES = (*scaling.TEST_SIZES, 200, 500, 1000, 2000)


def _curves(
    problems: Sequence[ProblemMatrix], draws: int, seed: int
) -> tuple[Points, Points, Points]:
    """Tests curve, solutions curve and allocation curve (empty without problems)."""
    if not problems:
        return [], [], []
    return (
        _points(scaling.tests_curve(problems, FULL_TEST_SIZES, samples=draws, seed=seed)),
        _points(scaling.solutions_curve(problems, seed=seed)),
        _points(allocation.allocation_curve(problems, seed=seed)),
    )


def _points(points: Iterable[CurvePoint | AllocationPoint]) -> Points:
    return [dataclasses.asdict(p) for p in points]


def as_dict(analysis: RunAnalysis) -> dict[str, Any]:
    """The analysis as plain JSON-ready data."""
    return dataclasses.asdict(analysis)


@dataclass(frozen=True)
class Mismatch:
    """A stored run metric that the analysis recomputes differently."""

    name: str
    stored: float
    recomputed: float | None


def check_stored(
    analysis: RunAnalysis, stored: Mapping[str, tuple[float, int]], tolerance: float = 1e-9
) -> list[Mismatch]:
    """Stored metrics that differ from the recomputed strategy table (a run scored by
    older scorer code, or a matrix that changed since): empty when all agree."""
    recomputed = {
        f"{row.strategy}.{metric}": value
        for row in analysis.strategies
        for metric, value in row.metrics.items()
    }
    out = []
    for name, (value, _) in sorted(stored.items()):
        again = recomputed.get(name)
        if again is None or not math.isclose(again, value, abs_tol=tolerance):
            out.append(Mismatch(name, value, again))
    return out
