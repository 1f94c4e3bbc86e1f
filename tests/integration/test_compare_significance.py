"""``coderm compare``'s bootstrap intervals and ``--fail-on-regression`` on real runs.

Two runs of the bundled CodeT sample (HumanEval with CodeGen's solutions and tests)
through the services, on all 20 of its problems: A with 10 solutions and 10 test
samples a problem, B with the first 2 solutions and 2 test samples (a smaller solution
subset and test budget of the same completions). The intervals are recomputed here from the
``selections`` table (the scorer's per-problem scores, not the matrices ``compare``
loads), by the documented scheme written out plainly.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import numpy as np
import pytest

from tests.stack import Services, Stack, cli, query, submit, wait_run_finished

pytestmark = pytest.mark.integration
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")
PROBLEMS = 20
Values = dict[str, dict[str, float]]


@pytest.fixture(scope="module")
def runs(stack: Stack, services: Services, imported: None) -> tuple[str, str]:
    """A: 20 problems x 10 solutions x 10 test samples; B: the same problems with the
    first 2 solutions and 2 test samples."""
    problems = ("--problems", str(PROBLEMS))
    a = submit(stack, *RUN_ARGS, "--n", "10", "--m", "10", *problems, "--name", "sig-a")
    b = submit(stack, *RUN_ARGS, "--n", "2", "--m", "2", *problems, "--name", "sig-b")
    for run in (a, b):
        wait_run_finished(stack, services, run, timeout=600)
    return a, b


def _pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def stored_values(stack: Stack, run: str) -> Values:
    """Per problem (task id), each strategy's pass@k in percent, from the stored
    selections: ``score`` is pass@1, vanilla's ``n`` and ``c`` give its pass@k and
    CodeT's detail carries its own."""
    rows = query(
        stack,
        "SELECT p.task_id, s.strategy, s.score, s.detail FROM selections s "
        "JOIN problems p ON p.id = s.problem_id WHERE s.run_id = $1",
        uuid.UUID(run),
    )
    out: Values = {}
    for row in rows:
        values = out.setdefault(str(row["task_id"]), {})
        strategy = str(row["strategy"])
        detail: dict[str, Any] = json.loads(row["detail"])
        values[f"{strategy}.pass@1"] = 100.0 * float(row["score"])
        for k in (2, 10, 100):
            if strategy == "vanilla" and k <= detail["n"]:
                values[f"vanilla.pass@{k}"] = 100.0 * _pass_at_k(detail["n"], detail["c"], k)
            if strategy == "codet" and f"pass@{k}" in detail:
                values[f"codet.pass@{k}"] = 100.0 * float(detail[f"pass@{k}"])
    return out


def recompute(
    a: Values, b: Values, level: float, resamples: int, seed: int
) -> dict[str, tuple[float, float, float]]:
    """``metric -> (delta, low, high)`` for every metric both runs define on every
    common problem: problems in task-id order, ``default_rng(seed)`` draws the
    resampled indices, the percentile interval of the resampled mean differences."""
    common = sorted(a.keys() & b.keys())
    names = set.intersection(*(set(a[t]) & set(b[t]) for t in common))
    rows = np.random.default_rng(seed).integers(0, len(common), size=(resamples, len(common)))
    out = {}
    for name in names:
        xa = np.array([a[t][name] for t in common])
        xb = np.array([b[t][name] for t in common])
        deltas = xa[rows].mean(axis=1) - xb[rows].mean(axis=1)
        low, high = np.quantile(deltas, [(1 - level) / 2, (1 + level) / 2])
        out[name] = (float(xa.mean() - xb.mean()), float(low), float(high))
    return out


def compare_json(stack: Stack, a: str, b: str, *options: str) -> dict[str, Any]:
    result = cli(stack, "compare", a, b, "--format", "json", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def check_intervals(
    data: dict[str, Any], expected: dict[str, tuple[float, float, float]], level: float
) -> None:
    found = {row["metric"]: row for row in data["significance"]}
    strategies = {name for name in found if name.partition(".")[2].startswith("pass@")}
    assert strategies == set(expected)
    for name, (delta, low, high) in expected.items():
        row = found[name]
        assert row["delta"] == pytest.approx(delta, abs=1e-9), name
        assert row["low"] == pytest.approx(low, abs=1e-9), name
        assert row["high"] == pytest.approx(high, abs=1e-9), name
        assert row["level"] == level and row["problems"] == PROBLEMS
        verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
        assert row["verdict"] == verdict, name
    assert {"individual.accuracy", "majority.far"} <= found.keys()


def test_compare_json_intervals_match_an_independent_recomputation(
    stack: Stack, runs: tuple[str, str]
) -> None:
    a, b = runs
    values_a, values_b = stored_values(stack, a), stored_values(stack, b)
    assert len(values_a.keys() & values_b.keys()) == PROBLEMS

    data = compare_json(stack, a, b)
    assert data["common"] == PROBLEMS
    assert data["bootstrap"] == {"level": 0.95, "resamples": 2000, "seed": 0, "inner": 0}
    check_intervals(data, recompute(values_a, values_b, 0.95, 2000, 0), 0.95)
    assert all(r["resamples"] == 2000 and r["seed"] == 0 for r in data["significance"])

    options = ("--level", "0.9", "--resamples", "500", "--seed", "7")
    data = compare_json(stack, b[:8], a[:8], *options)
    check_intervals(data, recompute(values_b, values_a, 0.9, 500, 7), 0.9)
    assert all(r["resamples"] == 500 and r["seed"] == 7 for r in data["significance"])

    # the inner level re-scores resampled copies of each problem: same deltas, and
    # intervals of its own
    nested = compare_json(stack, b, a, "--inner", "4", "--resamples", "300")
    assert nested["bootstrap"]["inner"] == 4
    flat = {row["metric"]: row for row in data["significance"]}
    for row in nested["significance"]:
        assert row["inner"] == 4 and row["delta"] == pytest.approx(flat[row["metric"]]["delta"])
        if ".pass@" in row["metric"]:  # defined on every copy
            assert row["low"] is not None and row["low"] <= row["high"]


def below_zero(
    name: str, expected: dict[str, tuple[float, float, float]], printed: dict[str, Any]
) -> bool:
    """Whether A is significantly worse: the recomputed interval lies below zero (a
    strategy), or the printed one lies on the bad side of zero (a quality figure; above
    it for FAR, where lower is better)."""
    if name in expected:
        return expected[name][2] < 0
    if printed["higher_is_better"]:
        return bool(printed["high"] < 0)
    return bool(printed["low"] > 0)


def test_fail_on_regression_exits_1_exactly_when_the_interval_lies_below_zero(
    stack: Stack, runs: tuple[str, str]
) -> None:
    a, b = runs
    values = {a: stored_values(stack, a), b: stored_values(stack, b)}
    regressions = 0
    for x, y in ((a, b), (b, a)):
        # the strategies' intervals as recomputed here, the quality figures' as printed
        expected = recompute(values[x], values[y], 0.95, 2000, 0)
        printed = {row["metric"]: row for row in compare_json(stack, x, y)["significance"]}
        gated = sorted(name for name, row in printed.items() if row["low"] is not None)
        worse = sorted(name for name in gated if below_zero(name, expected, printed[name]))
        assert {n for n in worse if n in expected} == {n for n in expected if expected[n][2] < 0}
        regressions += len(worse)
        gates = [option for name in gated for option in ("--fail-on-regression", name)]
        result = cli(stack, "compare", x, y, "--format", "json", *gates)
        assert result.returncode == (1 if worse else 0), result.stdout + result.stderr
        assert json.loads(result.stdout)["common"] == PROBLEMS  # stdout stays JSON
        named = sorted(
            line.split()[1] for line in result.stderr.splitlines() if line.startswith("regression:")
        )
        assert named == worse, result.stderr
    assert regressions, "the runs were chosen so that B is significantly worse somewhere"

    # a threshold (percentage points) moves the bar: fail only below -threshold
    expected = recompute(values[b], values[a], 0.95, 2000, 0)
    name, (_, _, high) = min(expected.items(), key=lambda item: item[1][2])
    assert high < 0
    below = cli(stack, "compare", b, a, "--fail-on-regression", f"{name}:{-high - 0.01:.4f}")
    assert below.returncode == 1, below.stdout + below.stderr
    assert f"regression: {name} is significantly worse in A than in B" in below.stderr
    above = cli(stack, "compare", b, a, "--fail-on-regression", f"{name}:{-high + 0.01:.4f}")
    assert above.returncode == 0, above.stdout + above.stderr
    assert "interval" in above.stdout and "verdict" in above.stdout


def test_an_unknown_metric_is_a_user_error_listing_the_known_ones(
    stack: Stack, runs: tuple[str, str]
) -> None:
    a, b = runs
    result = cli(stack, "compare", a, b, "--fail-on-regression", "codet.pass@3")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown metric 'codet.pass@3'" in result.stdout
    assert "codet.pass@1" in result.stdout and "individual.accuracy" in result.stdout
    bad = cli(stack, "compare", a, b, "--fail-on-regression", "codet.pass@1:-2")
    assert bad.returncode == 2 and "METRIC[:THRESHOLD]" in bad.stdout


def test_the_table_fits_80_columns(stack: Stack, runs: tuple[str, str]) -> None:
    result = cli(stack, "compare", runs[0], runs[1], columns=80)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "coderm_majority.pass@1" in result.stdout and "95% interval" in result.stdout
