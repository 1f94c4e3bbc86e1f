"""``coderm simulate-allocation`` on a real finished run through the services, and the
report's allocation section."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.stack import (
    Services,
    Stack,
    cli,
    metrics,
    query,
    submit,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished_run(stack: Stack, services: Services, imported: None) -> str:
    """The demo benchmark, 3 problems x 6 solutions x 6 test samples, finished."""
    run_id = submit(
        stack,
        *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b"),
        *("--n", "6", "--m", "6", "--problems", "3"),
    )
    wait_run_finished(stack, services, run_id, timeout=300)
    return run_id


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]


def test_simulation_json_matches_the_run_and_writes_the_figure(
    stack: Stack, finished_run: str, tmp_path: Path
) -> None:
    """Budgets and allocations as asked; at the full budget (6 test samples a problem)
    ``equal`` has revealed the whole matrix in every draw, so its figures are the
    run's stored CodeT and majority-voting pass@1, without spread."""
    result = cli(
        stack,
        *("simulate-allocation", finished_run[:8], "--budgets", "6,1,2"),
        *("--allocations", "scarce,gold", "--draws", "3", "--seed", "5"),
        *("--format", "json", "--out", str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["run"] == finished_run
    assert data["problems"] == 3 and data["draws"] == 3 and data["seed"] == 5
    assert data["budgets"] == [1, 2, 6]
    assert data["allocations"] == ["equal", "scarce", "gold"]
    points = {(p["allocation"], p["budget"]): p for p in data["points"]}
    assert set(points) == {(a, float(b)) for a in data["allocations"] for b in (1, 2, 6)}

    stored = metrics(stack, finished_run)
    full = points[("equal", 6.0)]["strategies"]
    assert full["codet"]["accuracy"] == pytest.approx(stored["codet.pass@1"])
    assert full["coderm_majority"]["accuracy"] == pytest.approx(stored["coderm_majority.pass@1"])
    assert full["codet"]["error_bar"] == pytest.approx(0, abs=1e-9)
    assert (tmp_path / "allocation_rounds.png").read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((tmp_path / "allocation_rounds.json").read_text()) == data


def test_simulation_table_reads_at_80_columns(stack: Stack, finished_run: str) -> None:
    result = cli(stack, "simulate-allocation", finished_run, "--draws", "2", columns=80)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for word in ("CodeRM", "CodeT", "B=1", "B=64", "equal", "scarce", "(continued"):
        assert word in result.stdout, word


def test_report_files_hold_the_allocation_figure(
    stack: Stack, finished_run: str, tmp_path: Path
) -> None:
    result = cli(stack, "report", finished_run, "--out", str(tmp_path), "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["allocation_rounds"]["run"] == finished_run
    assert (tmp_path / "plots" / "allocation_rounds.png").read_bytes().startswith(PNG_SIGNATURE)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Test budget allocation in rounds" in markdown
    assert "plots/allocation_rounds.png" in markdown


def test_unknown_or_unfinished_run_is_one_error_line(stack: Stack, finished_run: str) -> None:
    unknown = cli(stack, "simulate-allocation", "ffffffff-ffff")
    assert "no unique run" in _one_error_line(unknown)

    run = uuid.UUID(finished_run)
    query(stack, "UPDATE runs SET state = 'running' WHERE id = $1", run)
    try:
        running = cli(stack, "simulate-allocation", finished_run)
    finally:
        query(stack, "UPDATE runs SET state = 'finished' WHERE id = $1", run)
    assert "is running" in _one_error_line(running)

    bad = cli(stack, "simulate-allocation", finished_run, "--allocations", "equal,nope")
    assert "unknown allocation nope" in _one_error_line(bad)
