"""``coderm report``: a run's analysis as one document, written as JSON, Markdown and
self-contained HTML with PNG plots, and shown in the terminal.

The document (:mod:`services.cli.blocks`) is built once from a :class:`Report`, so
every format holds the same sections and numbers.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import allocation_report, plots, render, store
from services.cli.allocation_report import AllocationSim
from services.cli.blocks import (
    Block,
    Details,
    Heading,
    Image,
    Para,
    Table,
    fmt,
    to_html,
    to_markdown,
)
from services.cli.report_data import RunData, RunInfo, load_run_data
from services.cli.rounds import RoundRow, rounds_table
from services.cli.rounds import as_dicts as rounds_dicts
from shared.core.allocation_rounds import ALLOCATIONS, OrderedProblem
from shared.core.analysis import (
    STRATEGY_LABELS,
    Mismatch,
    QualityRow,
    RunAnalysis,
    StrategyRow,
    analyse_run,
    as_dict,
    check_stored,
    strategy_order,
)
from shared.core.analysis_types import ALL_PROBLEMS
from shared.core.coderm_reference import ID_SLOTS, ReferenceFigure
from shared.core.coderm_reference import ReferenceParams as ReferenceParams  # for app.py
from shared.db.sample_order import ordered_problems, sample_tests
from shared.enums import RunState

DEFAULT_REFERENCE = ReferenceParams()
"""CodeRM's defaults: sol_num 100, ut_num 100, sample_num 100; seed 0."""


@dataclass(frozen=True)
class Report:
    """What a report shows: the run, its analysis, and the stored metrics check;
    ``allocation``: the round-based allocation simulation (finished, labelled runs)."""

    run: RunInfo
    analysis: RunAnalysis
    stored_metrics: dict[str, tuple[float, int]]
    mismatches: list[Mismatch]
    allocation: AllocationSim | None = None
    rounds: tuple[RoundRow, ...] = ()
    budget: str | None = None


def _ks(rows: Sequence[StrategyRow]) -> list[str]:
    metrics = {m for row in rows for m in row.metrics}
    return sorted(metrics, key=lambda m: (not m.startswith("pass@"), int(m[5:] or 0)))


def strategy_table(rows: Sequence[StrategyRow], caption: str = "") -> Table:
    """Strategies (bounds marked) x pass@k, in percent."""
    ks = _ks(rows)
    return Table(
        ["strategy", "role", *ks, "problems"],
        [
            [row.label, row.role, *(fmt(row.metrics.get(k)) for k in ks), str(row.problems)]
            for row in rows
        ],
        caption,
    )


QUALITY_TABLES = (
    (
        "FAR/FRR as rates (the paper's text, CodeRM README): "
        "FAR = FP / (FP + TN), FRR = FN / (FN + TP)",
        ("accuracy", "precision", "recall", "f1", "far", "frr"),
        ("Acc", "Precision", "Recall", "F1", "FAR", "FRR"),
    ),
    (
        "FAR/FRR as printed in CodeRM appendix D: "
        "FAR(paper) = FP / (FP + TP), FRR(paper) = FN / (FN + TN)",
        ("accuracy", "f1", "far_paper", "frr_paper"),
        ("Acc", "F1", "FAR(paper)", "FRR(paper)"),
    ),
)


def quality_tables(rows: Sequence[QualityRow]) -> list[Table]:
    """The quality rows twice, each table labelled with its FAR/FRR definition."""
    return [
        Table(
            ["classifier", "averaging", *headers],
            [
                [row.classifier, row.averaging, *(fmt(getattr(row, n)) for n in names)]
                for row in rows
            ],
            caption,
        )
        for caption, names, headers in QUALITY_TABLES
    ]


def _curve_table(points: Sequence[dict[str, Any]], axis: str) -> Table:
    overall = [p for p in points if p["bucket"] == ALL_PROBLEMS]
    sizes = sorted({p["size"] for p in overall})
    cells: dict[str, dict[int, float]] = {}
    for p in overall:
        cells.setdefault(p["strategy"], {})[p["size"]] = 100 * p["accuracy"]
    return Table(
        ["strategy", *(f"{axis[0]}={s}" for s in sizes)],
        [
            [STRATEGY_LABELS.get(name, name), *(fmt(cells[name].get(s)) for s in sizes)]
            for name in sorted(cells, key=strategy_order)
        ],
        f"accuracy (%) over all problems as the number of {axis} grows",
    )


def _run_lines(report: Report) -> list[Block]:
    run = report.run
    lines = [
        f"run `{run.run_id}` ({run.name or 'unnamed'}), benchmark {run.benchmark}, "
        f"policy {run.policy}, test model {run.test_model}, "
        f"{run.n_solutions} solutions x {'up to ' if report.budget else ''}{run.n_tests} "
        f"test samples, {run.test_style} tests",
        f"state {run.state}: {run.problems_scored} of {run.problems} problems scored; "
        f"created {run.created_at}, finished {run.finished_at or '-'}",
        f"ground truth: {report.analysis.ground_truth}",
        f"profile {run.profile} (every figure below follows it: {PROFILE_NOTES[run.profile]}); "
        f"verdicts {run.exec_profile}, labels {run.ground_truth_profile}",
    ]
    return [Para(line) for line in lines + report.analysis.notes]


#: What each run profile means for the figures (shared.core.run_profile).
PROFILE_NOTES = {
    "strict": "every solution sample counts, one without code as incorrect; evalplus "
    "labels need the base and the plus inputs",
    "coderm-ref": "CodeRM's executor globals, only samples with one code block count; "
    "evalplus labels by the plus inputs alone",
}


def _check_line(report: Report) -> Para:
    if not report.stored_metrics:
        return Para("No stored run metrics to check against (run not finished).")
    if not report.mismatches:
        return Para(
            f"All {len(report.stored_metrics)} stored run metrics equal the figures "
            "recomputed here from the stored matrix."
        )
    items = "; ".join(
        f"{m.name} stored {fmt(m.stored)} vs {fmt(m.recomputed)}" for m in report.mismatches
    )
    return Para(f"Stored run metrics differ from the recomputation (older scorer?): {items}")


def reference_params_text(ref: ReferenceFigure) -> str:
    """``sol_num=.., ut_num=.., sample_num=.., seed=..``."""
    return (
        f"sol_num={ref.sol_num}, ut_num={ref.ut_num}, sample_num={ref.sample_num}, seed={ref.seed}"
    )


def _reference_notes(ref: ReferenceFigure) -> list[str]:
    spread = ref.repetitions
    notes = [
        f"{len(spread)} repetitions: min {fmt(min(spread))}, max {fmt(max(spread))}, "
        f"stdev {fmt(statistics.pstdev(spread), 3)} (percent; each rounded to 4 decimals "
        "as a fraction, as calculate_result.py rounds it)."
    ]
    if ref.full_permutation:
        padding = " and by the padded sol_ids (below)" if ref.short_of_sol_num else ""
        notes.append(
            f"ut_num = {ID_SLOTS} and no problem has more than {ID_SLOTS} unique tests: every "
            "repetition draws every test (the shuffle only permutes them), so the figure is "
            "the exact vote on CodeRM's solutions (second row) rounded to 4 decimals as a "
            "fraction. That vote differs from coderm_majority.pass@1 only by the samples "
            "without code, which CodeRM's extraction leaves out "
            f"({ref.dropped_no_code} in this run){padding}, and by the first sol_num "
            "code-bearing samples standing for the problem."
        )
    else:
        notes.append(
            f"Each repetition draws ut_num = {ref.ut_num} of the {ID_SLOTS} ut_id slots of a "
            "problem (slots beyond its unique tests hold no test), so the figure is a "
            "bootstrap estimate, not the exact vote."
        )
    if ref.over_100_tests:
        notes.append(
            f"{ref.over_100_tests} problems have more than {ID_SLOTS} unique tests: only the "
            f"first {ID_SLOTS} (ut_id 0..{ID_SLOTS - 1}, tests sorted by id) can ever be drawn."
        )
    if ref.short_of_sol_num:
        notes.append(
            f"{ref.short_of_sol_num} problems have fewer than sol_num = {ref.sol_num} "
            "code-bearing samples: the missing sol_ids pass nothing and count as incorrect "
            "(they weigh only when no solution passes a drawn test)."
        )
    return notes


def reference_blocks(analysis: RunAnalysis) -> list[Block]:
    """CodeRM's ``calculate_result.py`` figure beside the exact vote over all tests."""
    ref = analysis.coderm_reference
    if ref is None:
        return []
    majority = next(
        (r.metrics.get("pass@1") for r in analysis.strategies if r.strategy == "coderm_majority"),
        None,
    )
    table = Table(
        ["figure", "pass@1", "problems"],
        [
            [
                "CodeRM majority voting, every sample, every test (coderm_majority.pass@1)",
                fmt(majority),
                str(analysis.problems),
            ],
            [
                "the same vote on CodeRM's solutions (the code-bearing samples as sol_id "
                f"0..{ref.sol_num - 1}, missing ones passing nothing), every test",
                fmt(ref.exact_vote),
                str(ref.problems),
            ],
            [
                f"calculate_result.py figure ({reference_params_text(ref)})",
                fmt(ref.figure),
                str(ref.problems),
            ],
        ],
        "CodeRM's majority-voting figure as its evaluation/calculate_result.py computes it "
        "(random.seed(seed) before the run), in percent",
    )
    return [
        Heading("CodeRM's calculate_result.py figure", 3),
        table,
        *(Para(note) for note in _reference_notes(ref)),
    ]


def _wrong_table(analysis: RunAnalysis) -> Table:
    rows = [r for r in analysis.problem_rows if r.wrong]
    strategies = [s.strategy for s in analysis.strategies if s.role == "selection"]
    return Table(
        ["task", "correct / n", "pass rate", *strategies, "wrong pick"],
        [
            [
                r.task_id,
                f"{r.correct} / {r.n}",
                fmt(r.pass_rate, 2),
                *(fmt(r.scores.get(s)) for s in strategies),
                ", ".join(r.wrong),
            ]
            for r in sorted(rows, key=lambda r: (-r.pass_rate, r.task_id))
        ],
        f"{len(rows)} problems with a correct sample where a strategy's pick is wrong "
        "(expected correctness 0); cells are each strategy's expected correctness",
    )


def _problem_table(analysis: RunAnalysis) -> Table:
    strategies = [s.strategy for s in analysis.strategies]
    return Table(
        ["task", "n", "correct", "unique", "tests", "bucket", *strategies, "ind. acc", "maj. acc"],
        [
            [
                r.task_id,
                str(r.n),
                str(r.correct),
                str(r.unique_solutions),
                str(r.tests),
                r.bucket,
                *(fmt(r.scores.get(s)) for s in strategies),
                fmt(r.individual_accuracy, 1),
                fmt(r.majority_accuracy, 1),
            ]
            for r in analysis.problem_rows
        ],
    )


ALLOCATION_NOTE = (
    f"only {allocation_report.REPORT_DRAWS} draws in a report, to keep it quick; "
    f"`coderm simulate-allocation RUN` draws {allocation_report.DEFAULT_DRAWS} by default"
)


def allocation_blocks(sim: AllocationSim) -> list[Block]:
    """The round-based allocation section of the report files."""
    return [
        Heading("Test budget allocation in rounds"),
        *allocation_report.sim_blocks(sim, ALLOCATION_NOTE),
    ]


def _correctness_blocks(report: Report, terminal: bool) -> list[Block]:
    analysis = report.analysis
    blocks: list[Block] = [
        Heading("Strategies"),
        strategy_table(
            analysis.strategies,
            f"percent over {analysis.problems} problems; vanilla (random pick) and oracle "
            "(any sample correct) bound every selection strategy",
        ),
        _check_line(report),
        Image("strategies", "pass@1 per strategy between the vanilla and oracle bounds"),
        *reference_blocks(analysis),
    ]
    if analysis.base_strategies:
        blocks += [
            Heading("Base inputs only", 3),
            strategy_table(
                analysis.base_strategies,
                "the same selections judged by the benchmark's base inputs only",
            ),
        ]
    blocks += [
        Heading("Difficulty"),
        Image("difficulty", "problems per pass-rate decile and each strategy's mean score"),
    ]
    if analysis.tests_curve or analysis.solutions_curve:
        blocks.append(Heading("Scaling curves"))
        blocks.append(
            Para(
                f"Tests: {analysis.curve_draws} draws a size of test samples without "
                "replacement (bands: one standard deviation over draws). Solutions: the "
                "first n samples (CodeRM's prefix), all tests."
            )
        )
    for axis, points in (("tests", analysis.tests_curve), ("solutions", analysis.solutions_curve)):
        if points:
            blocks += [
                _curve_table(points, axis),
                Image(f"{axis}_curve", f"accuracy as the number of {axis} grows"),
                Image(f"{axis}_curve_buckets", f"the same per difficulty decile ({axis})"),
            ]
    if analysis.allocation_curve:
        blocks += [
            Heading("Test budget allocation"),
            Image("allocation", "equal vs gold-lambda vs estimated-lambda allocation"),
        ]
    if report.allocation is not None and not terminal:
        blocks += allocation_blocks(report.allocation)
    blocks += [
        Heading("Unit-test quality"),
        Para(
            "Individual tests accept the samples that pass them; majority voting accepts "
            "the samples passing the most tests of their problem. Counted per solution "
            "sample; percent; '-' where undefined."
        ),
        *quality_tables(analysis.quality),
        Heading("Problems where the chosen solution is wrong"),
        _wrong_table(analysis),
        Details("All problems", [_problem_table(analysis)]),
    ]
    return blocks


def document(report: Report, terminal: bool = False) -> list[Block]:
    """The report's sections, in order; ``terminal``: without the allocation
    simulation's section (the files hold it; the terminal gets one line pointing at
    its figure)."""
    title = report.run.name or report.run.run_id[:8]
    blocks: list[Block] = [Heading(f"coderm report: {title}", 1), *_run_lines(report)]
    if report.budget is not None:
        blocks += [
            Heading("Rounds of the test budget"),
            Para(report.budget),
            rounds_table(report.rounds),
        ]
    if report.analysis.strategies:
        blocks += _correctness_blocks(report, terminal)
    if report.analysis.unlabelled:
        blocks += [
            Heading("Problems without ground truth"),
            Table(
                ["task", "n", "unique", "tests", "test samples", "passing pairs"],
                [
                    [
                        u.task_id,
                        str(u.n),
                        str(u.unique_solutions),
                        str(u.tests),
                        str(u.test_samples),
                        str(u.passing_pairs),
                    ]
                    for u in report.analysis.unlabelled
                ],
            ),
        ]
    return blocks


# ------------------------------------------------------------------ renderers


def to_json(report: Report) -> str:
    """The report's numbers as JSON: run, recomputed metrics, stored metrics, analysis,
    and the round-based allocation simulation (``null`` when the run has none)."""
    metrics = {
        f"{row.strategy}.{name}": value
        for row in report.analysis.strategies
        for name, value in row.metrics.items()
    }
    data = {
        "run": dataclasses.asdict(report.run),
        "metrics": metrics,
        "stored_metrics": {
            name: {"value": value, "problems": problems}
            for name, (value, problems) in sorted(report.stored_metrics.items())
        },
        "mismatches": [dataclasses.asdict(m) for m in report.mismatches],
        "analysis": as_dict(report.analysis),
        "allocation_rounds": (
            None if report.allocation is None else allocation_report.sim_dict(report.allocation)
        ),
        "budget": report.budget,
        "rounds": rounds_dicts(report.rounds),
    }
    return json.dumps(data, indent=2, allow_nan=False)


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    directory: Path
    html: Path
    markdown: Path
    json: Path
    plots: list[Path]


def write_report(report: Report, out: Path) -> ReportFiles:
    """Write ``report.html``, ``report.md``, ``report.json`` and ``plots/*.png``."""
    blocks = document(report)
    pngs = plots.all_plots(report.analysis)
    if report.allocation is not None:
        pngs[allocation_report.PLOT_STEM] = allocation_report.sim_plot(report.allocation)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, png in pngs.items():
        path = plot_dir / f"{stem}.png"
        path.write_bytes(png)
        paths.append(path)
    title = f"coderm report {report.run.name or report.run.run_id[:8]}"
    files = ReportFiles(out, out / "report.html", out / "report.md", out / "report.json", paths)
    files.html.write_text(to_html(blocks, pngs, title), encoding="utf-8")
    files.markdown.write_text(
        to_markdown(blocks, {stem: f"plots/{stem}.png" for stem in pngs}), encoding="utf-8"
    )
    files.json.write_text(to_json(report) + "\n", encoding="utf-8")
    return files


def make_report(
    data: RunData,
    curve_draws: int = 20,
    curves: bool = True,
    reference: ReferenceParams | None = DEFAULT_REFERENCE,
    rounds: Sequence[OrderedProblem] = (),
) -> Report:
    """Analyse a run's loaded data and check the stored metrics against it;
    ``reference``: the parameters of CodeRM's ``calculate_result.py`` figure (``None``
    leaves it out); ``rounds``: the labelled problems with their test samples' order,
    for the round-based allocation simulation at
    :data:`~services.cli.allocation_report.REPORT_DRAWS` draws (none: no simulation)."""
    analysis = analyse_run(
        data.problems,
        base_problems=data.base_problems,
        unlabelled=data.unlabelled,
        curve_draws=curve_draws,
        curves=curves,
        reference=reference,
    )
    mismatches = check_stored(analysis, data.stored_metrics)
    allocation = (
        allocation_report.run_simulation(
            data.info.run_id, rounds, ALLOCATIONS, draws=allocation_report.REPORT_DRAWS
        )
        if rounds
        else None
    )
    return Report(
        data.info,
        analysis,
        data.stored_metrics,
        mismatches,
        allocation,
        rounds=data.rounds,
        budget=data.budget,
    )


class ReportFormat(StrEnum):
    """What ``coderm report`` prints (the files are written in every case)."""

    TABLE = "table"
    JSON = "json"
    MD = "md"
    HTML = "html"


async def load_report(
    sessions: async_sessionmaker[AsyncSession],
    run_prefix: str,
    curve_draws: int,
    reference: ReferenceParams = DEFAULT_REFERENCE,
) -> Report:
    """Load a run (id or unique prefix) and analyse it; a finished run with labelled
    problems gets the round-based allocation simulation too."""
    async with sessions() as session:
        run = await store.find_run(session, run_prefix)
        data = await load_run_data(session, run)
        rounds: list[OrderedProblem] = []
        if run.state == RunState.FINISHED.value and data.problems:
            orders = await sample_tests(session, run.id, [p.problem_id for p in data.problems])
            rounds = ordered_problems(data.problems, orders)
    return make_report(data, curve_draws, reference=reference, rounds=rounds)


def default_out(report: Report) -> Path:
    """``reports/<first 8 characters of the run id>/`` under the working directory."""
    return Path("reports") / report.run.run_id[:8]


def emit_report(console: Console, report: Report, output: ReportFormat, out: Path) -> int:
    """Write the report files into ``out`` and print ``output``; the exit status (1
    when the run has no scored problem yet)."""
    if not (report.analysis.problem_rows or report.analysis.unlabelled):
        console.print(f"run {report.run.run_id} ({report.run.state}): no scored problems yet")
        return 1
    files = write_report(report, out)
    where = f"report written to {files.html.resolve()} (also report.md, report.json, plots/)"
    if output is ReportFormat.TABLE:
        console.print(render.terminal_document(document(report, terminal=True)))
        console.print(where)
        if report.allocation is not None:
            figure = files.directory / "plots" / f"{allocation_report.PLOT_STEM}.png"
            console.print(f"test allocation in rounds: {figure.resolve()} (tables in the files)")
        return 0
    text = {
        ReportFormat.JSON: files.json,
        ReportFormat.MD: files.markdown,
        ReportFormat.HTML: files.html,
    }[output].read_text(encoding="utf-8")
    print(text, end="")
    Console(stderr=True).print(where)
    return 0
