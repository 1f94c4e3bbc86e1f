"""Database operations behind the CLI: imports, run submission, progress and results."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Boolean, String, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.cli.errors import UserError
from services.cli.importers import CompletionRecord, ProblemRecord
from shared.core.run_profile import RunProfile, run_profile
from shared.db.models import (
    IMPORTED_GENERATION,
    Benchmark,
    Completion,
    ExecutionBatch,
    Model,
    Problem,
    Run,
    RunCompletion,
    RunMetric,
    RunProblem,
)
from shared.enums import CompletionFormat, ModelRole, ProblemState, Role


async def upsert_benchmark(
    session: AsyncSession, name: str, source: str, problems: Sequence[ProblemRecord]
) -> tuple[int, int]:
    """Insert a benchmark and its problems; return (id, new problems).

    Existing problems are kept as they are, except that CodeRM messages given now replace
    theirs and evalplus inputs fill a problem that has none (re-importing with
    ``--coderm-prompts`` attaches the prompts to an imported benchmark).
    """
    await session.execute(
        insert(Benchmark).values(name=name, source=source).on_conflict_do_nothing()
    )
    benchmark_id = await session.scalar(select(Benchmark.id).where(Benchmark.name == name))
    assert benchmark_id is not None
    added = 0
    for start in range(0, len(problems), 200):
        stmt = insert(Problem).values(
            [
                {
                    "benchmark_id": benchmark_id,
                    "task_id": p.task_id,
                    "position": p.position,
                    "prompt": p.prompt,
                    "test_prompt": p.test_prompt,
                    "entry_point": p.entry_point,
                    "canonical_solution": p.canonical_solution,
                    "test_code": p.test_code,
                    "ground_truth": p.ground_truth,
                    "oracle": p.oracle,
                    "solution_messages": p.solution_messages,
                    "test_messages": p.test_messages,
                }
                for p in problems[start : start + 200]
            ]
        )
        result = await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["benchmark_id", "task_id"],
                set_={
                    "oracle": func.coalesce(Problem.oracle, stmt.excluded.oracle),
                    "solution_messages": func.coalesce(
                        stmt.excluded.solution_messages, Problem.solution_messages
                    ),
                    "test_messages": func.coalesce(
                        stmt.excluded.test_messages, Problem.test_messages
                    ),
                },
            ).returning(literal_column("xmax = 0", Boolean))
        )
        added += sum(1 for (inserted,) in result if inserted)
    return benchmark_id, added


async def upsert_model(
    session: AsyncSession, name: str, backend: str, completion_format: CompletionFormat
) -> int:
    """Register a model for imported completions (idempotent); its completion format
    decides extraction. A name registered with another backend is refused."""
    await session.execute(
        insert(Model)
        .values(
            name=name,
            backend=backend,
            role=ModelRole.BOTH.value,
            format=completion_format.value,
            config={},
        )
        .on_conflict_do_nothing()
    )
    found = (await session.execute(select(Model.id, Model.backend).where(Model.name == name))).one()
    if found.backend != backend:
        raise UserError(f"model {name!r} is registered with backend {found.backend!r}")
    return int(found.id)


async def insert_completions(
    session: AsyncSession,
    model_id: int,
    role: Role,
    completion_format: CompletionFormat,
    problem_ids: dict[str, int],
    records: Sequence[CompletionRecord],
) -> int:
    """Insert imported samples in order; return how many were new."""
    rows = [
        {
            "model_id": model_id,
            "problem_id": problem_ids[record.task_id],
            "role": role.value,
            "generation": IMPORTED_GENERATION,
            "sample_index": index,
            "format": completion_format.value,
            "text": text,
        }
        for record in records
        for index, text in enumerate(record.samples)
    ]
    added = 0
    for start in range(0, len(rows), 2000):
        result = await session.execute(
            insert(Completion)
            .values(rows[start : start + 2000])
            .on_conflict_do_nothing()
            .returning(Completion.id)
        )
        added += len(result.all())
    return added


@dataclass(frozen=True)
class Progress:
    """Per-stage progress of a run, each as (done, total)."""

    run_id: uuid.UUID
    state: str
    error: str | None
    generated: tuple[int, int]
    extracted: tuple[int, int]
    executed: tuple[int, int]
    scored: tuple[int, int]
    profile: str = RunProfile.STRICT.value


async def run_progress(session: AsyncSession, run_id: uuid.UUID) -> Progress:
    """Cheap counts of each stage of a run."""
    run = await session.get(Run, run_id)
    if run is None:
        raise UserError(f"no run {run_id}")
    await session.refresh(run)
    problems = (
        await session.scalar(
            select(func.count()).select_from(RunProblem).where(RunProblem.run_id == run_id)
        )
        or 0
    )
    linked = (
        select(RunCompletion.problem_id, RunCompletion.role)
        .where(RunCompletion.run_id == run_id)
        .distinct()
        .subquery()
    )
    generated = await session.scalar(select(func.count()).select_from(linked)) or 0
    extracted = (
        await session.scalar(
            select(func.count())
            .select_from(RunProblem)
            .where(
                RunProblem.run_id == run_id,
                RunProblem.solutions_extracted.is_(True),
                RunProblem.tests_extracted.is_(True),
            )
        )
        or 0
    )
    pairs_done, pairs_total = (
        await session.execute(
            select(
                func.coalesce(
                    func.sum(ExecutionBatch.pairs).filter(ExecutionBatch.done_at.is_not(None)), 0
                ),
                func.coalesce(func.sum(ExecutionBatch.pairs), 0),
            ).where(ExecutionBatch.run_id == run_id)
        )
    ).one()
    scored = (
        await session.scalar(
            select(func.count())
            .select_from(RunProblem)
            .where(RunProblem.run_id == run_id, RunProblem.state == ProblemState.SCORED.value)
        )
        or 0
    )
    return Progress(
        run_id=run.id,
        state=run.state,
        error=run.error,
        generated=(generated, 2 * problems),
        extracted=(extracted, problems),
        executed=(int(pairs_done), int(pairs_total)),
        scored=(scored, problems),
        profile=run_profile(run.config).value,
    )


async def run_metrics(session: AsyncSession, run_id: uuid.UUID) -> dict[str, tuple[float, int]]:
    """The run's metrics, ``name -> (value, problems)``."""
    rows = await session.execute(
        select(RunMetric.name, RunMetric.value, RunMetric.problems).where(
            RunMetric.run_id == run_id
        )
    )
    return {name: (value, problems) for name, value, problems in rows}


async def find_run(session: AsyncSession, prefix: str) -> Run:
    """A run by full id or unique id prefix."""
    runs = list(
        await session.scalars(select(Run).where(cast(Run.id, String).like(f"{prefix}%")).limit(2))
    )
    if len(runs) != 1:
        raise UserError(f"no unique run matches {prefix!r}")
    return runs[0]


@dataclass(frozen=True)
class RunSummary:
    """One line of ``coderm runs``."""

    run: Run
    benchmark: str
    policy: str
    test_model: str
    codet_pass_at_1: float | None


async def recent_runs(session: AsyncSession, limit: int) -> list[RunSummary]:
    """The newest runs with their models and CodeT pass@1 when finished."""
    policy = aliased(Model)
    tests = aliased(Model)
    rows = await session.execute(
        select(Run, Benchmark.name, policy.name, tests.name, RunMetric.value)
        .join(Benchmark, Benchmark.id == Run.benchmark_id)
        .join(policy, policy.id == Run.policy_model_id)
        .join(tests, tests.id == Run.test_model_id)
        .outerjoin(RunMetric, (RunMetric.run_id == Run.id) & (RunMetric.name == "codet.pass@1"))
        .order_by(Run.created_at.desc())
        .limit(limit)
    )
    return [RunSummary(*row) for row in rows.tuples()]
