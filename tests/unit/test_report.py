"""Run analysis and report rendering from hand-built matrices (no database)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import struct
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from services.cli.blocks import TERMINAL_ROWS, Table, to_markdown
from services.cli.render import (
    CONTINUED,
    ColumnSize,
    fit_widths,
    fitted_tables,
    label_columns,
    table_width,
)
from services.cli.report import (
    Report,
    ReportFormat,
    document,
    emit_report,
    make_report,
    to_json,
    write_report,
)
from services.cli.report_data import RunData, RunInfo
from shared.core.analysis import STRATEGY_LABELS, RunAnalysis, analyse_run, check_stored
from shared.core.analysis_types import ProblemMatrix
from shared.core.coderm_reference import ReferenceParams
from shared.core.strategies import Candidate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _c(sid: int | None, passed: set[int], correct: bool) -> Candidate:
    return Candidate(sid, frozenset(passed), correct)


def _problems() -> list[ProblemMatrix]:
    """Three problems with hand-computed figures (see the test docstrings)."""
    return [
        ProblemMatrix(
            1,
            "T/0",
            (
                _c(1, {11, 12}, True),
                _c(1, {11, 12}, True),
                _c(2, {11}, False),
                _c(None, set(), False),
            ),
            {11: 2, 12: 1},
            3,
        ),
        ProblemMatrix(2, "T/1", (_c(3, {13}, False), _c(4, set(), True)), {13: 1}, 1),
        ProblemMatrix(3, "T/2", (_c(5, set(), False), _c(6, set(), False)), {}, 0),
    ]


def _info() -> RunInfo:
    return RunInfo(
        run_id="0123abcd-0000-0000-0000-000000000000",
        name="unit",
        benchmark="humaneval",
        policy="p",
        test_model="t",
        n_solutions=4,
        n_tests=3,
        test_style="assert",
        state="finished",
        created_at="2026-11-26T00:00:00+00:00",
        finished_at="2026-11-26T00:01:00+00:00",
        problems=3,
        problems_scored=3,
        exec_profile="x",
        ground_truth_profile="y",
    )


@pytest.fixture(scope="module")
def analysis() -> RunAnalysis:
    return analyse_run(_problems(), base_problems=_problems()[:2], curve_draws=3)


def _metric(analysis: RunAnalysis, strategy: str, metric: str = "pass@1") -> float:
    row = next(r for r in analysis.strategies if r.strategy == strategy)
    return row.metrics[metric]


def test_strategy_table_matches_hand_computed_means(analysis: RunAnalysis) -> None:
    """vanilla (1/2 + 1/2 + 0)/3; oracle 2/3; every selection strategy picks right on
    T/0 only, but MBR-Exec ties {13} with {} on T/1 (1/2); vanilla pass@2 =
    (1 - 1/6 + 1 + 0)/3; no pass@10 with 2-sample problems."""
    assert _metric(analysis, "vanilla") == pytest.approx(100 / 3)
    assert _metric(analysis, "oracle") == pytest.approx(200 / 3)
    for strategy in ("coderm_majority", "codet", "first_max"):
        assert _metric(analysis, strategy) == pytest.approx(100 / 3)
    assert _metric(analysis, "mbr_exec") == pytest.approx(100 * 1.5 / 3)
    assert _metric(analysis, "vanilla", "pass@2") == pytest.approx(100 * (5 / 6 + 1) / 3)
    assert all("pass@10" not in row.metrics for row in analysis.strategies)
    roles = {row.strategy: row.role for row in analysis.strategies}
    assert roles["vanilla"] == "lower bound" and roles["oracle"] == "upper bound"
    assert [r.strategy for r in analysis.strategies][:2] == ["vanilla", "oracle"]


def test_problem_rows_flag_wrong_picks_only_where_a_correct_sample_exists(
    analysis: RunAnalysis,
) -> None:
    rows = {r.task_id: r for r in analysis.problem_rows}
    assert rows["T/0"].wrong == []
    assert set(rows["T/1"].wrong) == {"coderm_majority", "codet", "first_max"}
    assert rows["T/2"].wrong == []  # nothing correct: no pick could be right
    assert (rows["T/0"].n, rows["T/0"].correct, rows["T/0"].unique_solutions) == (4, 2, 2)
    assert rows["T/0"].pass_rate == 0.5 and rows["T/0"].bucket == "[0.5,0.6)"
    assert rows["T/1"].scores["codet"] == 0.0 and rows["T/0"].scores["codet"] == 1.0


def test_quality_rows_pool_individual_tests_under_both_definitions(
    analysis: RunAnalysis,
) -> None:
    """Per sample: t11 accepts s1,s1,s2; t12 s1,s1; t13 s3 -> TP 4, FP 2, TN 3, FN 1."""
    micro = next(
        q for q in analysis.quality if q.classifier == "individual tests" and "micro" in q.averaging
    )
    assert micro.accuracy == pytest.approx(70.0)
    assert micro.far == pytest.approx(100 * 2 / 5)  # FP / (FP + TN)
    assert micro.frr == pytest.approx(100 * 1 / 5)  # FN / (FN + TP)
    assert micro.far_paper == pytest.approx(100 * 2 / 6)  # FP / (FP + TP)
    assert micro.frr_paper == pytest.approx(100 * 1 / 4)  # FN / (FN + TN)


def test_base_table_and_stored_check(analysis: RunAnalysis) -> None:
    assert analysis.base_strategies is not None
    base = {r.strategy: r.metrics["pass@1"] for r in analysis.base_strategies}
    assert base["vanilla"] == pytest.approx(50.0)  # T/0 and T/1 only
    stored = {"vanilla.pass@1": (100 / 3, 3), "codet.pass@1": (40.0, 3)}
    mismatches = check_stored(analysis, stored)
    assert [m.name for m in mismatches] == ["codet.pass@1"]
    assert mismatches[0].recomputed == pytest.approx(100 / 3)


def test_curves_cover_every_size_and_end_at_the_full_matrix(analysis: RunAnalysis) -> None:
    overall = [p for p in analysis.solutions_curve if p["bucket"] == "all"]
    largest = max(p["size"] for p in overall)
    at_full = {p["strategy"]: p["accuracy"] for p in overall if p["size"] == largest}
    assert at_full["codet"] == pytest.approx(_metric(analysis, "codet") / 100)
    assert {p["axis"] for p in analysis.tests_curve} == {"tests"}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_written_report_has_sections_valid_pngs_and_the_same_numbers(
    analysis: RunAnalysis, tmp_path: Path
) -> None:
    report = Report(_info(), analysis, {"vanilla.pass@1": (100 / 3, 3)}, [])
    files = write_report(report, tmp_path / "out")

    page = files.html.read_text()
    for section in (
        "Strategies",
        "Base inputs only",
        "Scaling curves",
        "Unit-test quality",
        "Problems where the chosen solution is wrong",
        "All problems",
    ):
        assert f">{section}<" in page, section
    assert "FAR = FP / (FP + TN)" in page and "FAR(paper) = FP / (FP + TP)" in page
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must be self-contained"
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 5
    for encoded in images:
        width, height = _png_size(base64.b64decode(encoded))
        assert width > 100 and height > 100
    assert {p.name for p in files.plots} >= {"strategies.png", "tests_curve.png"}
    for path in files.plots:
        _png_size(path.read_bytes())

    data = json.loads(files.json.read_text())
    for row in analysis.strategies:
        for metric, value in row.metrics.items():
            assert data["metrics"][f"{row.strategy}.{metric}"] == pytest.approx(value)
    assert data["analysis"]["problem_rows"][1]["wrong"] == analysis.problem_rows[1].wrong
    assert data["run"]["run_id"] == _info().run_id
    assert f"{_metric(analysis, 'codet'):.2f}" in page


def test_markdown_tables_are_well_formed_and_link_the_plots(
    analysis: RunAnalysis, tmp_path: Path
) -> None:
    report = Report(_info(), analysis, {}, [])
    files = write_report(report, tmp_path)
    text = files.markdown.read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (tmp_path / link).is_file(), link
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert table_lines
    blocks = [b for b in document(report) if isinstance(b, Table)]
    for block in blocks:
        rendered = to_markdown([block], {}).splitlines()
        rows = [line for line in rendered if line.startswith("|")]
        assert len(rows) == len(block.rows) + 2
        assert all(
            line.count(" | ") == len(block.headers) - 1 for line in rows if "---" not in line
        )
    strategies = next(b for b in blocks if b.headers[0] == "strategy" and "role" in b.headers)
    assert strategies.rows[0][:3] == ["random pick (vanilla)", "lower bound", "33.33"]


def test_no_ground_truth_reports_no_correctness_figures(tmp_path: Path) -> None:
    unlabelled = [
        ProblemMatrix(7, "L/0", (_c(1, {5}, False), _c(2, set(), False)), {5: 1}, 1),
    ]
    analysis = analyse_run([], unlabelled=unlabelled)
    assert analysis.ground_truth == "unavailable"
    assert analysis.strategies == [] and analysis.quality == [] and not analysis.tests_curve
    assert "ground truth unavailable" in analysis.notes[0]
    assert analysis.unlabelled[0].passing_pairs == 1
    files = write_report(Report(_info(), analysis, {}, []), tmp_path)
    page = files.html.read_text()
    assert "ground truth unavailable" in page and "Problems without ground truth" in page
    assert "pass@1" not in page and files.plots == []
    assert json.loads(files.json.read_text())["metrics"] == {}


def _data() -> RunData:
    return RunData(_info(), tuple(_problems()), None, (), {})


def test_report_shows_calculate_results_figure_beside_the_exact_vote(tmp_path: Path) -> None:
    """sol_num 100, ut_num 100: every test drawn. T/0: code 1 twice on top -> 1; T/1:
    code 3 alone -> 0; T/2: no tests, 2 codes + 98 padded sol_ids -> 0. round(1/3, 4)."""
    report = make_report(_data(), curve_draws=2, curves=False)
    ref = report.analysis.coderm_reference
    assert ref is not None
    assert (ref.sol_num, ref.ut_num, ref.sample_num, ref.seed) == (100, 100, 100, 0)
    assert ref.figure == pytest.approx(33.33) and ref.exact_vote == pytest.approx(100 / 3)
    assert ref.full_permutation and ref.dropped_no_code == 1 and ref.short_of_sol_num == 3
    files = write_report(report, tmp_path)
    text = files.markdown.read_text()
    assert "calculate_result.py figure (sol_num=100, ut_num=100, sample_num=100, seed=0)" in text
    assert "coderm_majority.pass@1" in text and "every repetition draws every test" in text
    data = json.loads(to_json(report))
    assert data["analysis"]["coderm_reference"]["figure"] == pytest.approx(33.33)
    assert len(data["analysis"]["coderm_reference"]["repetitions"]) == 100


def test_report_reference_parameters_are_labelled_and_used(tmp_path: Path) -> None:
    params = ReferenceParams(sol_num=2, ut_num=1, sample_num=7, seed=3)
    report = make_report(_data(), curve_draws=2, curves=False, reference=params)
    ref = report.analysis.coderm_reference
    assert ref is not None and not ref.full_permutation and len(ref.repetitions) == 7
    text = write_report(report, tmp_path).markdown.read_text()
    assert "(sol_num=2, ut_num=1, sample_num=7, seed=3)" in text
    assert "bootstrap estimate" in text
    assert make_report(_data(), curves=False, reference=None).analysis.coderm_reference is None


# ------------------------------------------------------------------ the terminal at 80 columns


def _wide_problems() -> list[ProblemMatrix]:
    """Four problems of 100 solution samples (20 distinct codes, one sample a problem
    without code) and 250 test samples: every strategy, ten test sizes (1 to 500),
    seven solution sizes (1 to 100), and picks that go wrong with correct samples."""
    problems = []
    for p in range(4):
        codes = []
        for code in range(20):
            correct = code % (p + 2) == 0
            passed = {t for t in range(250) if (t + code) % (3 if correct else 4 + p) == 0}
            codes.append(_c(100 * p + code, passed, correct))
        samples = (*(codes[(7 * s) % 20] for s in range(99)), _c(None, set(), False))
        problems.append(
            ProblemMatrix(
                p + 1, f"LiveCodeBench/abc30{p}_a", samples, {t: 1 for t in range(250)}, 250
            )
        )
    return problems


@pytest.fixture(scope="module")
def wide_report() -> Report:
    problems = tuple(_wide_problems())
    info = dataclasses.replace(_info(), n_solutions=100, n_tests=250, problems=4, problems_scored=4)
    return make_report(RunData(info, problems, problems, (), {}), curve_draws=2)


def _terminal_text(report: Report, width: int, out: Path) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    assert emit_report(console, report, ReportFormat.TABLE, out) == 0
    return console.export_text()


@pytest.mark.parametrize("width", [80, 60])
def test_terminal_report_fits_the_width_and_cuts_no_cell(
    wide_report: Report, width: int, tmp_path: Path
) -> None:
    """Every line fits; no cell is cut ("…"), every word of every shown header and cell
    is printed whole; the wide scaling tables are split, each part keeping the labels."""
    text = _terminal_text(wide_report, width, tmp_path)
    assert "…" not in text
    assert all(cell_len(line) <= width for line in text.splitlines())
    printed = set(text.split())
    tables = [b for b in document(wide_report) if isinstance(b, Table)]
    for table in tables:
        for cell in (*table.headers, *(c for row in table.rows[:TERMINAL_ROWS] for c in row)):
            assert set(cell.split()) <= printed, cell
    curve = next(t for t in tables if t.headers[1] == "t=1")
    assert curve.headers[-1] == "t=500" and len(curve.rows) == len(STRATEGY_LABELS)
    assert CONTINUED in text
    assert "calculate_result.py figure" in text and "profile strict" in text


def test_fitted_tables_split_the_size_columns_and_repeat_the_labels() -> None:
    sizes = [f"t={s}" for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)]
    rows = [[label, *("100.00" for _ in sizes)] for label in STRATEGY_LABELS.values()]
    tables = fitted_tables(Table(["strategy", *sizes], rows, "caption"), 80)
    assert len(tables) == 2
    headers = [[str(c.header) for c in t.columns] for t in tables]
    assert [h[0] for h in headers] == ["strategy", "strategy"]
    assert [h for part in headers for h in part[1:]] == sizes
    assert [t.caption for t in tables] == [CONTINUED, "caption"]
    for table in tables:
        widths = [c.width for c in table.columns]
        assert all(w is not None for w in widths)
        assert table_width([w for w in widths if w is not None]) <= 80


def test_fit_widths_keeps_every_word_and_grows_the_cheapest_columns_first() -> None:
    sizes = [ColumnSize(9, 41), ColumnSize(9, 11), ColumnSize(6, 6)]
    widths = fit_widths(sizes, 40)
    assert table_width(widths) <= 40
    assert widths[1:] == [11, 6] and widths[0] >= 9
    assert fit_widths(sizes, 200) == [41, 11, 6]
    assert table_width(fit_widths([ColumnSize(50, 50), ColumnSize(6, 6)], 40)) <= 40


def test_label_columns_are_the_leading_text_columns() -> None:
    rows = [["HumanEval/0", "lower bound", "18 / 100", "0.18", "-"]]
    assert label_columns(["task", "role", "correct / n", "rate", "x"], rows) == 2
    assert label_columns(["strategy", "t=1"], []) == 1
    assert label_columns(["only"], [["text"]]) == 1
