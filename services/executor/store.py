"""The executor's database access: what a batch needs, what is cached, and the results."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.executor.code_cache import UnitTestCache, cache_key
from services.executor.ground_truth import GroundTruthSource, ground_truth_program, outputs_label
from shared.core.oracle import GroundTruthKind, Oracle
from shared.db.ground_truth import ground_truth_problem
from shared.db.models import (
    Execution,
    ExecutionBatch,
    GroundTruth,
    Problem,
    Run,
    Solution,
    UnitTest,
)
from shared.db.queries import run_test_ids
from shared.errors import UnknownReferenceError


@dataclass(frozen=True)
class CodeItem:
    """A solution or unit test to execute."""

    id: int
    code: str


@dataclass(frozen=True)
class BatchInputs:
    """Everything one execution batch needs, minus what the cache already holds."""

    run: Run
    problem: Problem
    solutions: list[CodeItem]
    tests: list[CodeItem]
    done_pairs: set[tuple[int, int]]
    labelled: set[int]


async def load_batch(
    session: AsyncSession,
    run_id: uuid.UUID,
    problem_id: int,
    solution_ids: Sequence[int],
    cache: UnitTestCache,
) -> BatchInputs:
    """Load the run, problem, solution and test code (tests through the process's
    ``cache``), and the cached results."""
    run = await session.get(Run, run_id)
    problem = await session.get(Problem, problem_id)
    if run is None or problem is None:
        raise UnknownReferenceError(f"run {run_id} or problem {problem_id} not found")
    solutions = [
        CodeItem(sid, code)
        for sid, code in await session.execute(
            select(Solution.id, Solution.code)
            .where(Solution.id.in_(solution_ids))
            .order_by(Solution.id)
        )
    ]
    tests = await load_tests(session, run_id, problem_id, cache)
    done = await session.execute(
        select(Execution.solution_id, Execution.unit_test_id).where(
            Execution.solution_id.in_(solution_ids), Execution.profile == run.exec_profile
        )
    )
    labelled = await session.scalars(
        select(GroundTruth.solution_id).where(
            GroundTruth.solution_id.in_(solution_ids),
            GroundTruth.profile == run.ground_truth_profile,
        )
    )
    return BatchInputs(run, problem, solutions, tests, {(s, t) for s, t in done}, set(labelled))


async def load_ground_truth(
    session: AsyncSession, run: Run, problem: Problem
) -> GroundTruthSource | None:
    """How the run labels the problem's solutions (see
    :func:`shared.db.ground_truth.ground_truth_problem`); ``None``: not at all."""
    target = await ground_truth_problem(session, run, problem)
    if target is None:
        return None
    if GroundTruthKind(target.ground_truth) is GroundTruthKind.TESTS:
        return ground_truth_program(target.test_code, target.entry_point)
    raw = await session.scalar(select(Problem.oracle).where(Problem.id == target.id))
    return outputs_label(target.entry_point, Oracle.model_validate(raw))


async def load_tests(
    session: AsyncSession, run_id: uuid.UUID, problem_id: int, cache: UnitTestCache
) -> list[CodeItem]:
    """The code of a run's distinct tests of a problem, ordered by id, through ``cache``:
    only the ids are read when this process already holds the same test set."""
    key = cache_key(problem_id, list(await session.scalars(run_test_ids(run_id, problem_id))))
    tests = cache.get(key)
    if tests is None:
        rows = await session.execute(
            select(UnitTest.id, UnitTest.code).where(UnitTest.id.in_(key[1])).order_by(UnitTest.id)
        )
        tests = tuple(CodeItem(tid, code) for tid, code in rows)
        cache.put(key, tests)
    return list(tests)


EXECUTION_COLUMNS = (
    "solution_id",
    "unit_test_id",
    "profile",
    "outcome",
    "passed",
    "tests_run",
    "tests_passed",
    "duration_ms",
    "detail",
)


async def save_executions(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Store execution results with ``COPY`` into a staging table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: a row already stored (redelivery,
    a replica that raced us) is left as it is."""
    if not rows:
        return
    # Through SQLAlchemy first: this opens the session's transaction, which the raw
    # COPY below then joins (on its own it would autocommit, and the staged rows would
    # be gone before the INSERT).
    await session.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS executions_staging "
            "(LIKE executions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    )
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    pg = raw.driver_connection
    assert pg is not None
    columns = ", ".join(EXECUTION_COLUMNS)
    await pg.copy_records_to_table(
        "executions_staging",
        records=[tuple(row[c] for c in EXECUTION_COLUMNS) for row in rows],
        columns=list(EXECUTION_COLUMNS),
    )
    await pg.execute(
        f"INSERT INTO executions ({columns}) SELECT {columns} FROM executions_staging "
        "ON CONFLICT DO NOTHING"
    )


async def save_ground_truth(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Insert ground-truth labels; existing labels are kept."""
    if rows:
        await session.execute(insert(GroundTruth).values(rows).on_conflict_do_nothing())


async def mark_batch_done(
    session: AsyncSession,
    run_id: uuid.UUID,
    problem_id: int,
    batch_no: int,
    executed: int,
    seconds: float,
) -> None:
    """Record that a batch finished (first completion wins)."""
    await session.execute(
        update(ExecutionBatch)
        .where(
            ExecutionBatch.run_id == run_id,
            ExecutionBatch.problem_id == problem_id,
            ExecutionBatch.batch_no == batch_no,
            ExecutionBatch.done_at.is_(None),
        )
        .values(executed=executed, seconds=seconds, done_at=datetime.now(UTC))
    )
