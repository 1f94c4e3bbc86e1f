"""Paired bootstrap intervals of ``coderm compare`` from hand-made values and matrices."""

from __future__ import annotations

import dataclasses
import io
import json
import random

import numpy as np
import pytest
from rich.console import Console

from services.cli.compare import (
    Gate,
    bootstrap_spec,
    check_gates,
    compare_runs,
    parse_gates,
    to_json,
    to_terminal,
)
from services.cli.errors import UserError
from services.cli.report_data import RunData, RunInfo
from shared.core.analysis import analyse_run
from shared.core.analysis_types import ProblemMatrix
from shared.core.metrics import mean_defined
from shared.core.significance import (
    Bootstrap,
    compare_significance,
    interval,
    problem_values,
    regressed,
    resample_problem,
    run_values,
    verdict,
)
from shared.core.strategies import Candidate


def _c(sid: int | None, passed: set[int], correct: bool) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def _random_problem(index: int, seed: int, n: int = 12, tests: int = 6) -> ProblemMatrix:
    """A consistent random matrix: ``n`` samples of up to 5 distinct codes."""
    rng = random.Random(f"{seed}:{index}")
    codes = {
        sid: (frozenset(t for t in range(tests) if rng.random() < 0.5), rng.random() < 0.4)
        for sid in range(5)
    }
    candidates = []
    for _ in range(n):
        sid = rng.randrange(6)
        candidates.append(Candidate(None) if sid == 5 else Candidate(sid, *codes[sid]))
    weights = {t: rng.randint(1, 3) for t in range(tests)}
    return ProblemMatrix(index, f"T/{index}", tuple(candidates), weights, tests + 2)


def _problems(seed: int, count: int = 8) -> list[ProblemMatrix]:
    return [_random_problem(i, seed) for i in range(count)]


def _independent(
    a: list[float], b: list[float], level: float, resamples: int, seed: int
) -> tuple[float, float]:
    """The interval by the documented scheme, written out plainly."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(a), size=(resamples, len(a)))
    deltas = [sum(a[i] for i in row) / len(row) - sum(b[i] for i in row) / len(row) for row in rows]
    low, high = np.quantile(deltas, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# ------------------------------------------------------------------ intervals


def test_identical_runs_give_a_zero_interval_within_noise_for_every_metric() -> None:
    problems = _problems(1)
    found = compare_significance(problems, problems, Bootstrap(resamples=300))
    names = {i.metric for i in found}
    assert {"codet.pass@1", "coderm_majority.pass@1", "vanilla.pass@10"} <= names
    assert {"individual.accuracy", "majority.far"} <= names
    for item in found:
        assert item.delta == 0.0 and item.low == 0.0 and item.high == 0.0, item.metric
        assert item.verdict == "within noise"
        assert item.problems == 8 and item.resamples == 300 and item.seed == 0


@pytest.mark.parametrize("shift", [7.5, -12.0])
def test_a_constant_shift_gives_a_degenerate_interval_at_the_shift(shift: float) -> None:
    b = [10.0, 20.0, 35.0, 50.0, 80.0]
    a = [v + shift for v in b]
    found = interval("codet.pass@1", a, b, Bootstrap(resamples=500, seed=3))
    assert found.delta == pytest.approx(shift)
    assert found.low == pytest.approx(shift) and found.high == pytest.approx(shift)
    assert found.verdict == ("better" if shift > 0 else "worse")
    assert regressed(found) is (shift < 0)


def test_a_lower_is_better_figure_reads_a_rise_as_worse() -> None:
    b = [10.0, 20.0, 30.0]
    found = interval("majority.far", [v + 5 for v in b], b, Bootstrap(resamples=200))
    assert not found.higher_is_better
    assert found.verdict == "worse"
    assert regressed(found) and regressed(found, 4.9) and not regressed(found, 5.1)


def test_two_problems_give_the_interval_of_three_equally_spaced_outcomes() -> None:
    # differences 0 and 10: a resample's delta is 0, 5 or 10 with probabilities
    # 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles are 0 and 10
    found = interval("vanilla.pass@1", [50.0, 60.0], [50.0, 50.0], Bootstrap(resamples=4000))
    assert found.delta == pytest.approx(5.0)
    assert (found.low, found.high) == (0.0, 10.0)
    assert found.verdict == "within noise"  # the interval touches zero
    assert not regressed(found)


def test_the_interval_matches_a_plain_recomputation_of_the_scheme() -> None:
    rng = random.Random(11)
    a = [100.0 * rng.random() for _ in range(17)]
    b = [100.0 * rng.random() for _ in range(17)]
    for level, resamples, seed in ((0.95, 2000, 0), (0.9, 333, 5), (0.99, 1000, 42)):
        found = interval("codet.pass@1", a, b, Bootstrap(level, resamples, seed))
        low, high = _independent(a, b, level, resamples, seed)
        assert found.low == pytest.approx(low, abs=1e-9)
        assert found.high == pytest.approx(high, abs=1e-9)
        assert found.delta == pytest.approx(sum(a) / 17 - sum(b) / 17)
        assert found.level == level and found.resamples == resamples and found.seed == seed


def test_the_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    rng = random.Random(2)
    a = [100.0 * rng.random() for _ in range(12)]
    b = [100.0 * rng.random() for _ in range(12)]
    first = interval("codet.pass@1", a, b, Bootstrap(seed=9))
    assert interval("codet.pass@1", a, b, Bootstrap(seed=9)) == first
    assert interval("codet.pass@1", a, b, Bootstrap(seed=10)) != first


def test_undefined_values_are_skipped_and_empty_resamples_left_out() -> None:
    # A defines the figure on the second problem only: a resample that draws the first
    # problem twice has no A value and is left out; every other one has delta 50
    spec = Bootstrap(resamples=1000, seed=4)
    found = interval("individual.precision", [None, 50.0], [0.0, 0.0], spec)
    rows = np.random.default_rng(4).integers(0, 2, size=(1000, 2))
    assert found.undefined == int(np.sum(rows.sum(axis=1) == 0))
    assert 150 < found.undefined < 350
    assert (found.low, found.high, found.delta) == (50.0, 50.0, 50.0)
    nothing = interval("individual.precision", [None, None], [1.0, 2.0], spec)
    assert nothing.low is None and nothing.verdict is None and nothing.undefined == 1000
    assert not regressed(nothing)


def test_verdicts_and_regressions_at_the_boundaries() -> None:
    assert verdict(0.1, 3.0) == "better" and verdict(-3.0, -0.1) == "worse"
    assert verdict(0.0, 3.0) == "within noise" and verdict(-3.0, 0.0) == "within noise"
    assert verdict(0.1, 3.0, higher_better=False) == "worse"
    base = interval("codet.pass@1", [1.0], [1.0])
    worse = dataclasses.replace(base, low=-4.0, high=-2.0)
    assert regressed(worse) and regressed(worse, 1.99) and not regressed(worse, 2.0)
    assert not regressed(dataclasses.replace(base, low=-4.0, high=0.0))


def test_bad_settings_and_inputs_are_refused() -> None:
    for bad in ({"level": 95.0}, {"level": 0.0}, {"resamples": 0}, {"seed": -1}, {"inner": -1}):
        with pytest.raises(ValueError):
            Bootstrap(**bad)
    with pytest.raises(ValueError, match="one value a problem"):
        interval("codet.pass@1", [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="inner"):
        interval("codet.pass@1", [1.0], [1.0], Bootstrap(inner=2))


# ------------------------------------------------------------------ per-problem values


def test_per_problem_values_average_to_the_report_figures() -> None:
    problems = _problems(5)
    analysis = analyse_run(problems, curves=False)
    values = run_values(problems)
    for row in analysis.strategies:
        for metric, value in row.metrics.items():
            got = mean_defined(values[f"{row.strategy}.{metric}"])
            assert got == pytest.approx(value), (row.strategy, metric)
    assert len(values) == sum(len(row.metrics) for row in analysis.strategies) + 10
    macro = {(q.classifier, q.averaging): q for q in analysis.quality}
    for classifier, name in (("individual tests", "individual"), ("majority voting", "majority")):
        quality = macro[(classifier, "macro over problems")]
        for figure in ("accuracy", "precision", "recall", "f1", "far"):
            expected = getattr(quality, figure)
            assert expected is not None, (name, figure)
            assert mean_defined(values[f"{name}.{figure}"]) == pytest.approx(expected)


def test_hand_computed_problem_values() -> None:
    problem = ProblemMatrix(
        1,
        "T/1",
        (_c(1, {10, 11}, True), _c(1, {10, 11}, True), _c(2, {10}, False), _c(None, set(), False)),
        {10: 2, 11: 1},
        3,
    )
    values = problem_values(problem)
    assert values["vanilla.pass@1"] == pytest.approx(50.0)
    assert values["vanilla.pass@2"] == pytest.approx(100.0 * (1 - 1 / 6))
    assert values["oracle.pass@1"] == 100.0 and values["codet.pass@1"] == 100.0
    assert "vanilla.pass@10" not in values and "codet.pass@10" not in values
    # individual tests: test 10 accepts 3 samples (2 correct, 1 not) and rejects the
    # empty one, test 11 accepts the 2 correct ones: 7 of 8 pairs right, 4 of 5 accepted
    assert values["individual.accuracy"] == pytest.approx(100.0 * 7 / 8)
    assert values["individual.precision"] == pytest.approx(100.0 * 4 / 5)
    assert values["majority.accuracy"] == 100.0 and values["majority.far"] == 0.0


def test_pass_at_k_is_kept_only_where_every_problem_defines_it() -> None:
    small = ProblemMatrix(9, "T/9", (_c(1, {1}, True), _c(2, set(), False)), {1: 1}, 1)
    values = run_values([*_problems(3, 2), small])
    assert "vanilla.pass@2" in values and "vanilla.pass@10" not in values
    assert len(values["individual.accuracy"]) == 3


def test_problems_are_matched_by_task_id_in_task_order() -> None:
    a = _problems(7, 6)
    b = [*_problems(8, 5)[::-1], _random_problem(99, 8)]
    found = {i.metric: i for i in compare_significance(a, b, Bootstrap(resamples=100))}
    assert found["codet.pass@1"].problems == 5
    common = sorted(f"T/{i}" for i in range(5))
    va = run_values(sorted(a[:5], key=lambda p: p.task_id))["codet.pass@1"]
    vb = run_values(sorted(b[:5], key=lambda p: p.task_id))["codet.pass@1"]
    assert [p.task_id for p in sorted(a[:5], key=lambda p: p.task_id)] == common
    assert found["codet.pass@1"] == interval("codet.pass@1", va, vb, Bootstrap(resamples=100))
    assert compare_significance(a, [_random_problem(99, 8)]) == []


# ------------------------------------------------------------------ inner level


def test_resample_problem_keeps_the_samples_and_draws_the_test_occurrences() -> None:
    problem = _random_problem(3, 1)
    copy = resample_problem(problem, np.random.default_rng(0))
    again = resample_problem(problem, np.random.default_rng(0))
    assert copy == again
    assert len(copy.candidates) == len(problem.candidates)
    assert set(copy.test_weights) <= set(problem.test_weights)
    slots = max(sum(problem.test_weights.values()), problem.test_samples)
    assert sum(copy.test_weights.values()) <= slots
    for cand in copy.candidates:
        assert cand in problem.candidates or dataclasses.replace(cand, passed=frozenset()) in {
            dataclasses.replace(c, passed=frozenset()) for c in problem.candidates
        }
        assert cand.passed <= set(copy.test_weights)


def test_the_inner_level_changes_nothing_where_every_sample_is_the_same() -> None:
    same = [
        ProblemMatrix(i, f"T/{i}", (_c(1, {1, 2}, ok),) * 4, {1: 2, 2: 1}, 3)
        for i, ok in enumerate((True, False, True, True, False))
    ]
    other = [dataclasses.replace(p, candidates=(_c(1, {1, 2}, True),) * 4) for p in same]
    flat = {i.metric: i for i in compare_significance(other, same, Bootstrap(resamples=300))}
    spec = Bootstrap(resamples=300, inner=5)
    nested = {i.metric: i for i in compare_significance(other, same, spec)}
    for name in ("vanilla.pass@1", "codet.pass@1", "oracle.pass@1"):
        assert (nested[name].low, nested[name].high) == (flat[name].low, flat[name].high)
        assert nested[name].inner == 5 and flat[name].inner == 0


def test_the_inner_level_widens_the_interval_of_identical_runs() -> None:
    problems = _problems(4, 10)
    spec = Bootstrap(resamples=400, seed=1, inner=8)
    found = {i.metric: i for i in compare_significance(problems, problems, spec)}
    vanilla = found["vanilla.pass@1"]
    assert vanilla.delta == 0.0
    assert vanilla.low is not None and vanilla.high is not None
    assert vanilla.low < 0.0 < vanilla.high
    assert compare_significance(problems, problems, spec) == list(found.values())


# ------------------------------------------------------------------ the command's pieces


def _info(run_id: str) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        name="unit",
        benchmark="humaneval",
        policy="p",
        test_model="t",
        n_solutions=12,
        n_tests=6,
        test_style="assert",
        state="finished",
        created_at="2026-11-26T00:00:00+00:00",
        finished_at="2026-11-26T00:01:00+00:00",
        problems=8,
        problems_scored=8,
        exec_profile="x",
        ground_truth_profile="y",
    )


def _data(run_id: str, problems: list[ProblemMatrix]) -> RunData:
    return RunData(_info(run_id), tuple(problems), None, (), {})


def test_the_comparison_json_carries_every_interval() -> None:
    spec = Bootstrap(level=0.9, resamples=200, seed=3)
    a = _data("aaaaaaaa-0000-0000-0000-000000000000", _problems(21))
    b = _data("bbbbbbbb-0000-0000-0000-000000000000", _problems(22))
    comparison = compare_runs(a, b, spec)
    data = json.loads(to_json(comparison))
    assert data["bootstrap"] == {"level": 0.9, "resamples": 200, "seed": 3, "inner": 0}
    rows = {r["metric"]: r for r in data["significance"]}
    for key in ("delta", "low", "high", "level", "verdict", "problems", "resamples", "seed"):
        assert key in rows["codet.pass@1"], key
    table = {f"{r['strategy']}.{r['metric']}": r for r in data["table"]}
    for name, row in table.items():
        assert rows[name]["delta"] == pytest.approx(row["delta"]), name
    assert rows["codet.pass@1"]["problems"] == 8


def test_the_table_fits_80_columns_and_shows_intervals_and_verdicts() -> None:
    a = _data("aaaaaaaa-0000-0000-0000-000000000000", _problems(21))
    b = _data("bbbbbbbb-0000-0000-0000-000000000000", _problems(22))
    comparison = compare_runs(a, b, Bootstrap(resamples=200))
    out = io.StringIO()
    Console(file=out, width=80).print(to_terminal(comparison))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert "coderm_majority.pass@1" in text and "individual.accuracy" in text
    assert "95% interval" in text and ("within" in text or "better" in text or "worse" in text)


def test_gates_parse_and_refuse_bad_thresholds() -> None:
    assert parse_gates(["codet.pass@1", "vanilla.pass@10:2.5"]) == [
        Gate("codet.pass@1", 0.0),
        Gate("vanilla.pass@10", 2.5),
    ]
    for bad in ("codet.pass@1:-1", "codet.pass@1:abc", ":1", "codet.pass@1:nan"):
        with pytest.raises(UserError, match="METRIC"):
            parse_gates([bad])
    with pytest.raises(UserError, match="fraction"):
        bootstrap_spec(95.0, 2000, 0)


def test_gates_fail_exactly_when_the_interval_lies_below_minus_the_threshold() -> None:
    a = _data("aaaaaaaa-0000-0000-0000-000000000000", _problems(21))
    b = _data("bbbbbbbb-0000-0000-0000-000000000000", _problems(22))
    comparison = compare_runs(a, b, Bootstrap(resamples=200))
    for item in comparison.significance:
        if item.high is None or item.low is None:
            continue
        failures = check_gates(comparison, [Gate(item.metric)])
        worse = item.high < 0 if item.higher_is_better else item.low > 0
        assert bool(failures) is worse, item.metric
        if worse:
            assert failures[0].startswith(f"regression: {item.metric} ")
    with pytest.raises(UserError, match=r"unknown metric 'codet\.pass@3'.*known: vanilla\.pass@1"):
        check_gates(comparison, [Gate("codet.pass@3")])


def test_a_regression_message_names_the_bound_and_the_threshold() -> None:
    worse = [_random_problem(i, 5) for i in range(6)]
    better = [  # B: every sample with code correct, so A's random pick is surely worse
        dataclasses.replace(p, candidates=tuple(_c(i, set(), True) for i in range(12)))
        for p in worse
    ]
    comparison = compare_runs(
        _data("aaaaaaaa-0000-0000-0000-000000000000", worse),
        _data("bbbbbbbb-0000-0000-0000-000000000000", better),
        Bootstrap(resamples=300),
    )
    found = {i.metric: i for i in comparison.significance}["vanilla.pass@1"]
    assert found.high is not None and found.high < 0
    [message] = check_gates(comparison, [Gate("vanilla.pass@1")])
    assert "significantly worse in A than in B" in message and "below -0" in message
    assert check_gates(comparison, [Gate("vanilla.pass@1", -found.high + 0.01)]) == []
    assert check_gates(comparison, [Gate("vanilla.pass@1", -found.high - 0.01)]) != []
