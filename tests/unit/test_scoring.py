"""Composition of strategies into per-problem selections and run metrics."""

from __future__ import annotations

import pytest

from services.scorer.scoring import ProblemScore, run_metrics, score_problem
from services.scorer.strategies import Candidate


def _c(sid: int | None, passed: set[int], correct: bool) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def test_score_problem_runs_every_strategy_with_counts() -> None:
    candidates = [
        _c(1, {10, 11}, True),
        _c(1, {10, 11}, True),
        _c(2, {10}, False),
        _c(None, set(), False),
    ]
    results = score_problem(candidates, {10: 2, 11: 1})
    assert set(results) == {"vanilla", "oracle", "coderm_majority", "codet"}
    assert results["vanilla"].score == pytest.approx(0.5)
    assert results["vanilla"].detail["n"] == 4
    assert results["vanilla"].detail["c"] == 2
    assert results["vanilla"].detail["unique_solutions"] == 2
    assert results["vanilla"].detail["test_samples"] == 3
    assert results["oracle"].score == 1.0
    assert results["coderm_majority"].score == 1.0
    assert results["codet"].score == 1.0
    assert results["codet"].chosen == (1,)
    assert "pass@2" in results["codet"].detail
    assert "pass@10" not in results["codet"].detail  # only 4 samples


def test_score_problem_without_tests_falls_back_to_random_pick() -> None:
    candidates = [_c(1, set(), True), _c(2, set(), False), _c(3, set(), False)]
    results = score_problem(candidates, {})
    assert results["codet"].score == pytest.approx(1 / 3)
    assert results["coderm_majority"].score == pytest.approx(1 / 3)


def test_run_metrics_means_in_percent_with_pass_at_k() -> None:
    scores = [
        ProblemScore("vanilla", 0.5, {"n": 2, "c": 1}),
        ProblemScore("vanilla", 0.0, {"n": 2, "c": 0}),
        ProblemScore("codet", 1.0, {"pass@2": 1.0}),
        ProblemScore("codet", 0.5, {"pass@2": 0.75}),
    ]
    metrics = run_metrics(scores)
    values = {name: value for name, (value, _) in metrics.items()}
    assert {problems for _, problems in metrics.values()} == {2}
    # pass@2 with n=2: 1 for the problem with a correct sample, 0 for the other.
    assert values == pytest.approx(
        {
            "vanilla.pass@1": 25.0,
            "vanilla.pass@2": 50.0,
            "codet.pass@1": 75.0,
            "codet.pass@2": 87.5,
        }
    )


def test_run_metrics_do_not_depend_on_order() -> None:
    values = [0.1, 0.2, 0.3, 1 / 3, 0.7, 1e-9, 0.9999]
    forward = run_metrics(ProblemScore("oracle", v, {}) for v in values)
    backward = run_metrics(ProblemScore("oracle", v, {}) for v in reversed(values))
    assert forward == backward
