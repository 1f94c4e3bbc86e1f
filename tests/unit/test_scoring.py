"""Composition of strategies into per-problem selections and run metrics."""

from __future__ import annotations

import pytest

from shared.core.scoring import ProblemScore, run_metrics, score_problem
from shared.core.strategies import Candidate


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
    assert set(results) == {
        "vanilla",
        "oracle",
        "coderm_majority",
        "codet",
        "mbr_exec",
        "first_max",
    }
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
    assert results["first_max"].score == 1.0
    assert results["first_max"].detail["sample_index"] == 0
    # pass vectors {10,11} x2, {10}, {}: the duplicated code agrees with itself
    assert results["mbr_exec"].score == 1.0
    assert results["mbr_exec"].chosen == (1,)
    assert results["mbr_exec"].detail["agreement"] == 2


def test_score_problem_without_tests_falls_back_to_random_pick() -> None:
    candidates = [_c(1, set(), True), _c(2, set(), False), _c(3, set(), False)]
    results = score_problem(candidates, {})
    assert results["codet"].score == pytest.approx(1 / 3)
    assert results["coderm_majority"].score == pytest.approx(1 / 3)
    assert results["mbr_exec"].score == pytest.approx(1 / 3)


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


@pytest.mark.parametrize(
    ("candidates", "weights", "expected"),
    [
        # a tie on the count: majority and CodeT pick uniformly, first-max the first
        (
            [_c(1, {10}, False), _c(2, {11}, True)],
            {10: 1, 11: 1},
            {
                "vanilla": 0.5,
                "oracle": 1.0,
                "coderm_majority": 0.5,
                "codet": 0.5,
                "first_max": 0.0,
                "mbr_exec": 0.5,
            },
        ),
        # duplicates: 3 samples of a wrong code agree; CodeT 1*sqrt(3) > 1*1; first-max
        # takes the first sample of the most passes, the correct one
        (
            [_c(1, {10}, True), _c(2, {11}, False), _c(2, {11}, False), _c(2, {11}, False)],
            {10: 1, 11: 1},
            {
                "vanilla": 0.25,
                "oracle": 1.0,
                "coderm_majority": 0.0,
                "codet": 0.0,
                "first_max": 1.0,
                "mbr_exec": 0.0,
            },
        ),
        # no correct solution
        (
            [_c(1, {10}, False), _c(None, set(), False)],
            {10: 1},
            {
                "vanilla": 0.0,
                "oracle": 0.0,
                "coderm_majority": 0.0,
                "codet": 0.0,
                "first_max": 0.0,
                "mbr_exec": 0.0,
            },
        ),
        # no tests, a no-code sample first: first-max picks it; MBR-Exec: all agree
        (
            [_c(None, set(), False), _c(1, set(), True)],
            {},
            {
                "vanilla": 0.5,
                "oracle": 1.0,
                "coderm_majority": 0.5,
                "codet": 0.5,
                "first_max": 0.0,
                "mbr_exec": 0.5,
            },
        ),
        # MBR-Exec against the rest: two wrong codes agree on {10}; the correct one
        # passes most (majority, first-max) and CodeT scores it 2*sqrt(1) > 1*sqrt(2)
        (
            [_c(1, {10, 11}, True), _c(2, {10}, False), _c(3, {10}, False)],
            {10: 1, 11: 1},
            {
                "vanilla": 1 / 3,
                "oracle": 1.0,
                "coderm_majority": 1.0,
                "codet": 1.0,
                "first_max": 1.0,
                "mbr_exec": 0.0,
            },
        ),
    ],
)
def test_score_problem_table(
    candidates: list[Candidate], weights: dict[int, int], expected: dict[str, float]
) -> None:
    results = score_problem(candidates, weights)
    assert {name: r.score for name, r in results.items()} == pytest.approx(expected)
    # scoring is deterministic, so the scorer's upsert is idempotent
    assert score_problem(candidates, weights) == results


def test_run_metrics_include_first_max() -> None:
    scores = [
        ProblemScore("first_max", 1.0, {"sample_index": 0, "top_passed": 2}),
        ProblemScore("first_max", 0.0, {"sample_index": 3, "top_passed": 1}),
        ProblemScore("vanilla", 0.5, {"n": 2, "c": 1}),
        ProblemScore("vanilla", 0.5, {"n": 2, "c": 1}),
    ]
    metrics = run_metrics(scores)
    value, problems = metrics["first_max.pass@1"]
    assert value == pytest.approx(50.0)
    assert problems == 2
    assert not any(
        name.startswith("first_max.pass@") and name != "first_max.pass@1" for name in metrics
    )


def test_run_metrics_include_mbr_exec() -> None:
    scores = [
        ProblemScore("mbr_exec", 1.0, {"agreement": 3}),
        ProblemScore("mbr_exec", 0.25, {"agreement": 4}),
        ProblemScore("vanilla", 0.5, {"n": 4, "c": 2}),
        ProblemScore("vanilla", 0.25, {"n": 4, "c": 1}),
    ]
    metrics = run_metrics(scores)
    value, problems = metrics["mbr_exec.pass@1"]
    assert value == pytest.approx(62.5)
    assert problems == 2
    assert [name for name in metrics if name.startswith("mbr_exec.")] == ["mbr_exec.pass@1"]
