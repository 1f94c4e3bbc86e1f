"""``coderm report`` and ``coderm compare`` on real runs through the services."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tests.stack import Services, Stack, cli, metrics, query, submit, wait_run_finished

pytestmark = pytest.mark.integration
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(stack: Stack, services: Services, imported: None) -> tuple[str, str]:
    """Run A: 5 problems x 10 solutions x 20 test samples; run B: the first 3 problems
    x 6 solutions x 10 test samples."""
    a = submit(stack, *RUN_ARGS, "--n", "10", "--m", "20", "--problems", "5")
    b = submit(stack, *RUN_ARGS, "--n", "6", "--m", "10", "--problems", "3")
    for run in (a, b):
        wait_run_finished(stack, services, run, timeout=300)
    return a, b


def _selections(stack: Stack, run: str) -> dict[tuple[str, str], float]:
    rows = query(
        stack,
        "SELECT p.task_id, s.strategy, s.score FROM selections s "
        "JOIN problems p ON p.id = s.problem_id WHERE s.run_id = $1",
        uuid.UUID(run),
    )
    return {(r["task_id"], r["strategy"]): r["score"] for r in rows}


def test_report_json_and_files_carry_the_stored_figures(
    stack: Stack, runs: tuple[str, str], tmp_path: Path
) -> None:
    run = runs[0]
    result = cli(stack, "report", run[:8], "--format", "json", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)

    stored = metrics(stack, run)
    assert {k: v["value"] for k, v in data["stored_metrics"].items()} == stored
    for name, value in stored.items():
        assert data["metrics"][name] == pytest.approx(value), name
    assert data["mismatches"] == []
    assert data["run"]["run_id"] == run and data["run"]["problems_scored"] == 5
    assert data["analysis"]["ground_truth"] == "available"

    rows = {r["task_id"]: r for r in data["analysis"]["problem_rows"]}
    assert sorted(rows) == sorted(f"HumanEval/{i}" for i in range(5))
    selections = _selections(stack, run)
    for (task, strategy), score in selections.items():
        assert rows[task]["scores"][strategy] == pytest.approx(score), (task, strategy)
    assert all(r["n"] == 10 for r in rows.values())

    assert json.loads((tmp_path / "report.json").read_text()) == data
    page = (tmp_path / "report.html").read_text()
    for section in ("Strategies", "Scaling curves", "Unit-test quality", "All problems"):
        assert f">{section}<" in page, section
    assert ">Problems where the chosen solution is wrong<" in page
    assert f"{stored['codet.pass@1']:.2f}" in page
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert {p.stem for p in pngs} >= {"strategies", "tests_curve", "solutions_curve"}
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in pngs)
    markdown = (tmp_path / "report.md").read_text()
    assert all((tmp_path / link).is_file() for link in re.findall(r"\]\((plots/[^)]+)\)", markdown))


def test_report_table_prints_the_strategy_table_and_where_the_files_are(
    stack: Stack, runs: tuple[str, str], tmp_path: Path
) -> None:
    result = cli(stack, "report", runs[0], "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    stored = metrics(stack, runs[0])
    assert "CodeT dual agreement" in result.stdout
    assert f"{stored['codet.pass@1']:.2f}" in result.stdout
    assert str((tmp_path / "report.html").resolve()) in result.stdout.replace("\n", "")


def test_report_table_fits_80_columns_and_cuts_no_cell(
    stack: Stack, runs: tuple[str, str], tmp_path: Path
) -> None:
    result = cli(stack, "report", runs[0], "--out", str(tmp_path), columns=80)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "CodeT dual agreement" in result.stdout and "t=20" in result.stdout


def test_compare_two_runs_on_their_common_problems(stack: Stack, runs: tuple[str, str]) -> None:
    a, b = runs
    result = cli(stack, "compare", a, b, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["common"] == 3
    assert data["only_in_a"] == ["HumanEval/3", "HumanEval/4"] and data["only_in_b"] == []

    common = [f"HumanEval/{i}" for i in range(3)]
    sel_a, sel_b = _selections(stack, a), _selections(stack, b)
    table = {(r["strategy"], r["metric"]): r for r in data["table"]}
    for strategy in ("vanilla", "codet", "coderm_majority"):
        row = table[(strategy, "pass@1")]
        mean_a = 100 * sum(sel_a[(t, strategy)] for t in common) / 3
        assert row["a"] == pytest.approx(mean_a)
        assert row["b"] == pytest.approx(metrics(stack, b)[f"{strategy}.pass@1"])
        assert row["delta"] == pytest.approx(row["a"] - row["b"])

    for outcome in data["outcomes"]:
        strategy = outcome["strategy"]
        deltas = [sel_a[(t, strategy)] - sel_b[(t, strategy)] for t in common]
        assert outcome["wins"] == sum(d > 1e-9 for d in deltas), strategy
        assert outcome["losses"] == sum(d < -1e-9 for d in deltas), strategy
        assert outcome["wins"] + outcome["losses"] + outcome["ties"] == 3
        assert {c["task_id"] for c in outcome["changed"]} == {
            t for t, d in zip(common, deltas, strict=True) if abs(d) > 1e-9
        }

    shown = cli(stack, "compare", a[:8], b[:8])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "3 problems in common" in shown.stdout and "2 only in A" in shown.stdout
