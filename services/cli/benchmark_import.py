"""``coderm import-benchmark``: store a benchmark's problems, then (evalplus benchmarks)
compute and store their expected outputs in the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import store
from services.cli.benchmarks import LoadedBenchmark
from services.cli.expected import ExpectedReport, fill_expected_outputs
from shared.core.oracle import GroundTruthKind
from shared.settings import SandboxSettings


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
    sandbox: SandboxSettings,
    name: str,
    source: str,
    loaded: LoadedBenchmark,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Store ``loaded`` as benchmark ``name`` (idempotent) and fill in missing expected
    outputs of its evalplus problems."""
    async with sessions.begin() as session:
        _, added = await store.upsert_benchmark(session, name, source, loaded.problems)
    kinds = [p.ground_truth for p in loaded.problems]
    expected = None
    if GroundTruthKind.OUTPUTS.value in kinds:
        expected = await fill_expected_outputs(sessions, sandbox, name, progress)
    return ImportSummary(
        in_file=len(loaded.problems),
        added=added,
        prompts_matched=loaded.prompts_matched,
        unlabelled=kinds.count(GroundTruthKind.NONE.value),
        expected=expected,
    )
