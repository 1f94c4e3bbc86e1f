"""Terminal rendering of run progress and results (rich)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from services.cli.store import Progress as RunProgress

STAGES = ("generated", "extracted", "executed", "scored")
STRATEGY_LABELS = {
    "vanilla": "random pick (vanilla)",
    "oracle": "oracle (any correct)",
    "coderm_majority": "CodeRM majority voting",
    "codet": "CodeT dual agreement",
}


def progress_bars() -> tuple[Progress, dict[str, TaskID]]:
    """A rich progress display with one bar per pipeline stage."""
    bars = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    tasks = {stage: bars.add_task(stage, total=None) for stage in STAGES}
    return bars, tasks


def update_bars(bars: Progress, tasks: dict[str, TaskID], progress: RunProgress) -> None:
    """Move every bar to the run's current counts."""
    for stage in STAGES:
        done, total = getattr(progress, stage)
        bars.update(tasks[stage], completed=done, total=total or None)


def metrics_table(title: str, metrics: dict[str, tuple[float, int]]) -> Table:
    """The strategy table: one row per strategy, pass@k columns, problems scored."""
    ks = sorted({int(name.split("@")[1]) for name in metrics})
    table = Table(title=title)
    table.add_column("strategy")
    for k in ks:
        table.add_column(f"pass@{k}", justify="right")
    table.add_column("problems", justify="right")
    for strategy, label in STRATEGY_LABELS.items():
        cells = []
        problems = 0
        for k in ks:
            value = metrics.get(f"{strategy}.pass@{k}")
            cells.append("" if value is None else f"{value[0]:.2f}")
            if value is not None:
                problems = max(problems, value[1])
        if problems:
            table.add_row(label, *cells, str(problems))
    return table
