"""Compute and store the expected outputs of a benchmark's evalplus problems, once.

``coderm import-benchmark`` calls this after storing the problems: every ``outputs``
problem whose ``oracle`` has no ``expected`` yet gets its canonical solution
(``prompt + canonical_solution``, as evalplus runs it) executed on its base and plus
inputs in a sandbox container, and the outputs and per-input times are written back.
Chunks are committed one by one, so an interrupted import resumes where it stopped. A
problem whose canonical solution fails in the sandbox (e.g. its outputs do not fit the
sandbox's memory) is recorded as ``unavailable`` with the reason: runs leave it unlabelled,
and a later import tries it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import aiodocker
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.executor.expected_outputs import CanonicalRun, compute_expected
from shared.core.oracle import Expected, GroundTruthKind, Oracle
from shared.db.models import Benchmark, Problem
from shared.settings import SandboxSettings

CHUNK = 20


@dataclass
class ExpectedReport:
    """What one call computed: problems done now, already done, and failures by task id."""

    computed: int = 0
    already: int = 0
    failed: dict[str, str] = field(default_factory=dict)


async def _pending(session: AsyncSession, benchmark: str) -> tuple[list[int], int]:
    """Ids of the benchmark's evalplus problems without expected outputs, and how many
    have them already."""
    rows = await session.execute(
        select(Problem.id, Problem.oracle.op("->>")("expected").is_not(None))
        .join(Benchmark, Benchmark.id == Problem.benchmark_id)
        .where(Benchmark.name == benchmark, Problem.ground_truth == GroundTruthKind.OUTPUTS.value)
        .order_by(Problem.position)
    )
    pending, done = [], 0
    for problem_id, has_expected in rows:
        if has_expected:
            done += 1
        else:
            pending.append(problem_id)
    return pending, done


async def _runs(session: AsyncSession, ids: list[int]) -> dict[int, CanonicalRun]:
    rows = await session.execute(
        select(
            Problem.id,
            Problem.task_id,
            Problem.prompt,
            Problem.canonical_solution,
            Problem.entry_point,
            Problem.oracle,
        ).where(Problem.id.in_(ids))
    )
    return {
        pid: CanonicalRun(task_id, prompt + canonical, entry, Oracle.model_validate(oracle))
        for pid, task_id, prompt, canonical, entry, oracle in rows
    }


async def fill_expected_outputs(
    sessions: async_sessionmaker[AsyncSession],
    settings: SandboxSettings,
    benchmark: str,
    progress: Callable[[int, int], None] | None = None,
) -> ExpectedReport:
    """Compute the missing expected outputs of ``benchmark`` in the sandbox and store them;
    ``progress(done, total)`` after each chunk."""
    report = ExpectedReport()
    async with sessions() as session:
        pending, report.already = await _pending(session, benchmark)
    if not pending:
        return report
    docker = aiodocker.Docker(url=settings.docker_url)
    try:
        for start in range(0, len(pending), CHUNK):
            async with sessions() as session:
                runs = await _runs(session, pending[start : start + CHUNK])
            results = await compute_expected(docker, settings, list(runs.values()))
            async with sessions.begin() as session:
                for problem_id, run in runs.items():
                    outcome = results[run.task_id]
                    change: dict[str, object]
                    if isinstance(outcome, Expected):
                        change = {"expected": outcome, "unavailable": None}
                        report.computed += 1
                    else:
                        change = {"expected": None, "unavailable": outcome}
                        report.failed[run.task_id] = outcome
                    oracle = run.oracle.model_copy(update=change)
                    await session.execute(
                        update(Problem)
                        .where(Problem.id == problem_id)
                        .values(oracle=oracle.model_dump(mode="json"))
                    )
            if progress is not None:
                progress(min(start + CHUNK, len(pending)), len(pending))
    finally:
        await docker.close()
    return report
