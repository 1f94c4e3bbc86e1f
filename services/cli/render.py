"""Terminal rendering of run progress (rich)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from services.cli.store import Progress as RunProgress

STAGES = ("generated", "extracted", "executed", "scored")


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
