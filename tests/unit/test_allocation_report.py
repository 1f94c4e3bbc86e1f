"""``coderm simulate-allocation`` and the report's allocation section, from hand-made
ordered matrices (services/cli/allocation_report.py; no database)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from services.cli.allocation_report import (
    PLOT_STEM,
    REPORT_DRAWS,
    AllocationSim,
    SimulateFormat,
    emit_simulation,
    parse_allocations,
    parse_budgets,
    run_simulation,
    sim_dict,
    sim_json,
    sim_tables,
)
from services.cli.blocks import Heading, Image, Table
from services.cli.errors import UserError
from services.cli.render import CONTINUED, label_columns
from services.cli.report import (
    ReportFormat,
    document,
    emit_report,
    make_report,
    to_json,
    write_report,
)
from services.cli.report_data import RunData, RunInfo
from shared.core.allocation_rounds import ALLOCATIONS, SIM_STRATEGIES, OrderedProblem
from shared.core.strategies import coderm_majority_vote, codet_dual_agreement
from tests.unit.test_allocation_rounds import small_set

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_ID = "0123abcd-0000-0000-0000-000000000000"
BUDGETS = (1, 2, 4, 6, 64)


@pytest.fixture(scope="module")
def problems() -> list[OrderedProblem]:
    return small_set()


@pytest.fixture(scope="module")
def sim(problems: list[OrderedProblem]) -> AllocationSim:
    return run_simulation(
        RUN_ID, problems, parse_allocations("scarce,gold"), BUDGETS, draws=4, seed=1
    )


# ------------------------------------------------------------------ options


def test_budgets_are_sorted_positive_integers_without_repeats() -> None:
    assert parse_budgets("4,1,2,2") == (1, 2, 4)
    assert parse_budgets(" 8 , 16,") == (8, 16)
    for bad in ("", "0,1", "1,two", "-2", "1.5"):
        with pytest.raises(UserError, match="--budgets"):
            parse_budgets(bad)


def test_allocations_put_equal_first_and_reject_unknown_names() -> None:
    assert list(parse_allocations(None)) == list(ALLOCATIONS)
    assert list(parse_allocations("scarce,gold,scarce")) == ["equal", "scarce", "gold"]
    assert list(parse_allocations("gold,equal")) == ["equal", "gold"]
    with pytest.raises(UserError, match="unknown allocation oracle"):
        parse_allocations("equal,oracle")


def test_no_problem_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no labelled problem"):
        run_simulation(RUN_ID, [], parse_allocations(None))


# ------------------------------------------------------------------ tables and JSON


def test_tables_hold_an_allocation_a_row_and_a_budget_a_column(sim: AllocationSim) -> None:
    tables = sim_tables(sim)
    assert len(tables) == len(SIM_STRATEGIES)
    at = {(p.allocation, p.budget): p for p in sim.points}
    for s, table in enumerate(tables):
        assert table.headers == ["allocation", "B=1", "B=2", "B=4", "B=6", "B=64"]
        assert [row[0] for row in table.rows] == ["equal", "scarce", "gold"]
        for row in table.rows:
            for budget, cell in zip(BUDGETS, row[1:], strict=True):
                point = at[(row[0], float(budget))]
                accuracy, bar = cell.split("±")
                assert float(accuracy) == pytest.approx(point.accuracy[s], abs=0.005)
                assert float(bar) == pytest.approx(1.96 * point.stderr[s], abs=0.005)
        assert f"over {sim.draws} draws" in table.caption
        assert "budgets above 6" in table.caption  # 64 > the 6 test samples a problem has
        assert label_columns(table.headers, table.rows) == 1  # "41.96±2.23" is a figure


def test_full_budget_equals_the_strategies_on_every_test(
    sim: AllocationSim, problems: list[OrderedProblem]
) -> None:
    """At the 6 test samples every problem has, every draw reveals the whole matrix:
    accuracy = the strategies' mean score over all tests, with no spread."""
    full = {
        "coderm_majority": [coderm_majority_vote(p.matrix.candidates).score for p in problems],
        "codet": [
            codet_dual_agreement(p.matrix.candidates, p.matrix.test_weights).score for p in problems
        ],
    }
    for point in (p for p in sim.points if p.budget >= 6):
        for s, name in enumerate(SIM_STRATEGIES):
            assert point.accuracy[s] == pytest.approx(100 * sum(full[name]) / len(problems))
            assert point.stderr[s] == pytest.approx(0, abs=1e-9)


def test_json_holds_every_figure(sim: AllocationSim) -> None:
    data = json.loads(sim_json(sim))
    assert data == sim_dict(sim)
    assert data["run"] == RUN_ID and data["draws"] == 4 and data["seed"] == 1
    assert data["budgets"] == list(BUDGETS)
    assert data["allocations"] == ["equal", "scarce", "gold"]
    assert data["strategies"] == list(SIM_STRATEGIES)
    assert len(data["points"]) == 3 * len(BUDGETS)
    for entry, point in zip(data["points"], sim.points, strict=True):
        assert (entry["allocation"], entry["budget"]) == (point.allocation, point.budget)
        for s, name in enumerate(SIM_STRATEGIES):
            figures = entry["strategies"][name]
            assert figures["accuracy"] == point.accuracy[s]
            assert figures["error_bar"] == pytest.approx(1.96 * point.stderr[s])
            assert figures["delta_vs_equal"] == point.delta[s]
    assert all(e["strategies"]["codet"]["delta_vs_equal"] == 0 for e in data["points"][:5])


# ------------------------------------------------------------------ the command's output


def _console(width: int) -> Console:
    return Console(width=width, record=True, file=io.StringIO())


def test_text_fits_80_columns_split_with_the_labels_repeated() -> None:
    console = _console(80)
    wide = run_simulation(
        RUN_ID, small_set(), parse_allocations(None), (1, 2, 4, 8, 16, 32, 64), draws=2
    )
    emit_simulation(console, wide, SimulateFormat.TEXT, None)
    text = console.export_text()
    assert all(cell_len(line) <= 80 for line in text.splitlines())
    assert "…" not in text and CONTINUED in text
    printed = set(text.split())
    for table in sim_tables(wide):
        for cell in (*table.headers, *(c for row in table.rows for c in row)):
            assert cell in printed, cell  # every figure on one line, never folded
    assert text.count("│ allocation") == 0 and text.count("┃ allocation") == 4


def test_out_writes_the_figure_and_json_prints_the_figures(
    sim: AllocationSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emit_simulation(_console(80), sim, SimulateFormat.JSON, tmp_path / "sim")
    printed = json.loads(capsys.readouterr().out)
    assert printed == sim_dict(sim)
    assert (tmp_path / "sim" / f"{PLOT_STEM}.png").read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((tmp_path / "sim" / f"{PLOT_STEM}.json").read_text()) == printed


# ------------------------------------------------------------------ the report


def _run_data(problems: list[OrderedProblem]) -> RunData:
    matrices = tuple(p.matrix for p in problems)
    info = RunInfo(
        run_id=RUN_ID,
        name="unit",
        benchmark="humaneval",
        policy="p",
        test_model="t",
        n_solutions=8,
        n_tests=6,
        test_style="assert",
        state="finished",
        created_at="2026-11-26T00:00:00+00:00",
        finished_at="2026-11-26T00:01:00+00:00",
        problems=len(matrices),
        problems_scored=len(matrices),
        exec_profile="x",
        ground_truth_profile="y",
    )
    return RunData(info, matrices, None, (), {})


def test_report_files_gain_the_section_and_the_terminal_one_line(
    problems: list[OrderedProblem], tmp_path: Path
) -> None:
    plain = make_report(_run_data(problems), curve_draws=2, reference=None)
    report = make_report(_run_data(problems), curve_draws=2, reference=None, rounds=problems)
    assert plain.allocation is None
    assert report.allocation is not None and report.allocation.draws == REPORT_DRAWS
    assert list(report.allocation.allocations) == list(ALLOCATIONS)

    files = document(report)
    headings = [b.text for b in files if isinstance(b, Heading)]
    assert "Test budget allocation in rounds" in headings
    assert any(isinstance(b, Image) and b.stem == PLOT_STEM for b in files)
    assert f"only {REPORT_DRAWS} draws in a report" in next(
        b.caption for b in files if isinstance(b, Image) and b.stem == PLOT_STEM
    )
    tables = [b for b in files if isinstance(b, Table)]
    assert sim_tables(report.allocation)[0] in tables
    assert document(report, terminal=True) == document(plain)

    written = write_report(report, tmp_path / "files")
    assert (tmp_path / "files" / "plots" / f"{PLOT_STEM}.png") in written.plots
    assert f"plots/{PLOT_STEM}.png" in written.markdown.read_text()
    assert "Test budget allocation in rounds" in written.html.read_text()

    old, new = json.loads(to_json(plain)), json.loads(to_json(report))
    existing = {"run", "metrics", "stored_metrics", "mismatches", "analysis", "budget", "rounds"}
    assert set(old) == set(new) == {*existing, "allocation_rounds"}  # one key added
    assert old["budget"] is None and old["rounds"] == []  # a run without a test budget
    assert old["allocation_rounds"] is None
    assert new["allocation_rounds"] == sim_dict(report.allocation)
    assert {k: v for k, v in new.items() if k != "allocation_rounds"} == {
        k: v for k, v in old.items() if k != "allocation_rounds"
    }

    texts = []
    for r, out in ((plain, tmp_path / "a"), (report, tmp_path / "b")):
        console = _console(400)  # the paths on one line each
        assert emit_report(console, r, ReportFormat.TABLE, out) == 0
        texts.append(console.export_text().replace(str(out.resolve()), "OUT"))
    before, after = texts[0].splitlines(), texts[1].splitlines()
    assert after[: len(before)] == before
    assert [line for line in after[len(before) :] if line] == [
        f"test allocation in rounds: OUT/plots/{PLOT_STEM}.png (tables in the files)"
    ]
