"""``coderm import-benchmark``: store a benchmark's problems, then (evalplus benchmarks)
have the executor compute and store their expected outputs in its sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import store
from services.cli.benchmarks import LoadedBenchmark
from services.cli.expected import ExpectedReport, fill_expected_outputs
from shared.core.oracle import GroundTruthKind
from shared.settings import BrokerSettings


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    in_file: int
    added: int
    prompts_matched: int | None
    unlabelled: int
    expected: ExpectedReport | None


async def import_benchmark(
    sessions: async_sessionmaker[AsyncSession],
    broker: BrokerSettings,
    name: str,
    source: str,
    loaded: LoadedBenchmark,
    progress: Callable[[int, int], None] | None = None,
    executor_wait_s: float = 60.0,
) -> ImportSummary:
    """Store ``loaded`` as benchmark ``name`` (idempotent) and have the executor fill in
    the missing expected outputs of its evalplus problems (see
    :func:`services.cli.expected.fill_expected_outputs`)."""
    async with sessions.begin() as session:
        _, added = await store.upsert_benchmark(session, name, source, loaded.problems)
    kinds = [p.ground_truth for p in loaded.problems]
    expected = None
    if GroundTruthKind.OUTPUTS.value in kinds:
        expected = await fill_expected_outputs(sessions, broker, name, progress, executor_wait_s)
    return ImportSummary(
        in_file=len(loaded.problems),
        added=added,
        prompts_matched=loaded.prompts_matched,
        unlabelled=kinds.count(GroundTruthKind.NONE.value),
        expected=expected,
    )


class ExpectedProgress:
    """A progress bar of the problems whose expected outputs the executor has stored:
    called as ``progress(done, total)``, shown from the first call; ``close`` ends it."""

    def __init__(self, console: Console) -> None:
        self._bar = Progress(
            TextColumn("expected outputs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._bar.add_task("expected", total=None)

    def __call__(self, done: int, total: int) -> None:
        """Move the bar to ``done`` of ``total`` problems."""
        if not self._bar.live.is_started:
            self._bar.start()
        self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        """Stop the bar (leaving its last state on the terminal), if it was shown."""
        if self._bar.live.is_started:
            self._bar.stop()
