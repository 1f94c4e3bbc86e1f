"""The dashboard views on a real finished run: every example query of docs/SQL.md runs,
and the views' numbers equal ``run_metrics`` and ``coderm report --format json``."""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from pathlib import Path

import pytest

from tests.stack import ROOT, Services, Stack, cli, metrics, query, submit, wait_run_finished

pytestmark = pytest.mark.integration
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")
N, PROBLEMS = 8, 4
MAY_BE_EMPTY = (
    "AND oracle AND codet = 0",
    "FROM v_run_rounds",
    "FROM v_run_round_problems",
    "v_checkpoint_evaluations",
    "v_checkpoint_verdicts",
    "FROM v_suite_members",
)
"""Markers of examples that may give no rows on this module's run (the rounds views
need a run with a test budget: tests/integration/test_rounds.py runs them on one; the
continuous-evaluation views need a watched suite: tests/integration/test_suites.py and
test_dashboard.py read them)."""
VIEW_MIGRATIONS = (
    "20261126_0004_dashboard_views.py",
    "20261207_0006_test_rounds.py",
    "20261207_0007_suites.py",
)


def _examples() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "SQL.md").read_text(), re.S)


def _views() -> list[str]:
    views: list[str] = []
    for name in VIEW_MIGRATIONS:
        path = ROOT / "migrations" / "versions" / name
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        views += list(module.VIEWS)
    return views


@pytest.fixture(scope="module")
def run_id(stack: Stack, services: Services, imported: None) -> str:
    found = submit(stack, *RUN_ARGS, "--n", str(N), "--m", "20", "--problems", str(PROBLEMS))
    wait_run_finished(stack, services, found, timeout=240)
    return found


def _run(stack: Stack, sql: str, run: str) -> list[dict[str, object]]:
    args = (uuid.UUID(run),) if ":'run'" in sql else ()
    return [dict(r) for r in query(stack, sql.replace(":'run'", "$1"), *args)]


def test_every_view_has_an_example() -> None:
    text = "\n".join(_examples())
    for view in _views():
        assert re.search(rf"\b{view}\b", text), f"docs/SQL.md has no example using {view}"


def test_every_example_query_runs_on_a_finished_run(stack: Stack, run_id: str) -> None:
    examples = _examples()
    assert len(examples) >= 9
    for sql in examples:
        rows = _run(stack, sql, run_id)
        if not any(marker in sql for marker in MAY_BE_EMPTY):
            assert rows, f"no rows from:\n{sql}"


def test_views_equal_run_metrics(stack: Stack, run_id: str) -> None:
    stored = metrics(stack, run_id)
    run = uuid.UUID(run_id)
    strategy = query(stack, "SELECT name, value, k FROM v_strategy_results WHERE run_id = $1", run)
    assert {r["name"]: r["value"] for r in strategy} == stored
    assert all(r["name"].endswith(f"pass@{r['k']}") for r in strategy)

    (summary,) = query(stack, "SELECT * FROM v_run_summary WHERE run_id = $1", run)
    assert summary["state"] == "finished"
    assert summary["problems"] == summary["problems_scored"] == PROBLEMS
    assert summary["codet_pass_at_1"] == stored["codet.pass@1"]
    assert summary["vanilla_pass_at_1"] == stored["vanilla.pass@1"]
    assert summary["wall_seconds"] > 0

    rows = query(stack, "SELECT * FROM v_problem_difficulty WHERE run_id = $1", run)
    assert len(rows) == PROBLEMS and all(r["samples"] == N for r in rows)
    mean = {
        "vanilla.pass@1": sum(r["pass_rate"] for r in rows) / len(rows),
        "codet.pass@1": sum(r["codet"] for r in rows) / len(rows),
        "coderm_majority.pass@1": sum(r["coderm_majority"] for r in rows) / len(rows),
        "oracle.pass@1": sum(r["oracle"] for r in rows) / len(rows),
    }
    for name, value in mean.items():
        assert 100 * value == pytest.approx(stored[name]), name
    assert all(json.loads(r["scores"])["codet"] == r["codet"] for r in rows)


def test_test_quality_view_equals_the_report(stack: Stack, run_id: str, tmp_path: Path) -> None:
    result = cli(stack, "report", run_id, "--format", "json", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    quality = json.loads(result.stdout)["analysis"]["quality"]
    micro = next(
        q for q in quality if q["classifier"] == "individual tests" and "micro" in q["averaging"]
    )
    (view,) = query(stack, "SELECT * FROM v_test_quality_run WHERE run_id = $1", uuid.UUID(run_id))
    for name in ("accuracy", "precision", "recall", "far", "frr", "far_paper", "frr_paper"):
        if micro[name] is None:
            assert view[name] is None, name
        else:
            assert 100 * view[name] == pytest.approx(micro[name]), name
    per_test = query(
        stack,
        "SELECT sum(samples) AS pairs, sum(not_executed) AS missing, sum(unlabelled) AS unl "
        "FROM v_test_quality WHERE run_id = $1",
        uuid.UUID(run_id),
    )[0]
    assert per_test["pairs"] == view["tp"] + view["fp"] + view["tn"] + view["fn"]
    assert per_test["missing"] == 0 and per_test["unl"] == 0


def test_throughput_views_agree_with_the_batches(stack: Stack, run_id: str) -> None:
    run = uuid.UUID(run_id)
    (total,) = query(stack, "SELECT * FROM v_throughput WHERE run_id = $1", run)
    (batches,) = query(
        stack,
        "SELECT count(*) AS n, sum(pairs) AS pairs FROM execution_batches WHERE run_id = $1",
        run,
    )
    assert total["batches"] == total["batches_done"] == batches["n"]
    assert total["pairs"] == batches["pairs"] and 0 <= total["executed"] <= total["pairs"]
    minutes = query(stack, "SELECT * FROM v_throughput_minute WHERE run_id = $1", run)
    assert sum(m["executed"] for m in minutes) == total["executed"]
    assert sum(m["batches"] for m in minutes) == total["batches"]
