"""The executor's database access: what a batch needs, what is cached (verdicts through
:mod:`shared.db.verdicts`), the labels; the canonical runs of evalplus problems and
their expected outputs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.executor.code_cache import UnitTestCache, cache_key
from services.executor.expected_outputs import CanonicalRun
from services.executor.ground_truth import GroundTruthSource, ground_truth_program, outputs_label
from shared.core.oracle import GroundTruthKind, Oracle
from shared.db.ground_truth import ground_truth_problem
from shared.db.models import (
    ExecutionBatch,
    GroundTruth,
    Problem,
    Run,
    Solution,
    UnitTest,
)
from shared.db.queries import run_test_ids
from shared.db.verdicts import stored_pairs
from shared.errors import UnknownReferenceError
from shared.messages import EXPECTED_REQUESTED


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
    done = await stored_pairs(
        session, run.exec_profile, [s.id for s in solutions], [t.id for t in tests]
    )
    labelled = await session.scalars(
        select(GroundTruth.solution_id).where(
            GroundTruth.solution_id.in_(solution_ids),
            GroundTruth.profile == run.ground_truth_profile,
        )
    )
    return BatchInputs(run, problem, solutions, tests, done, set(labelled))


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


async def load_expected_requests(
    session: AsyncSession, benchmark_id: int, problem_ids: Sequence[int]
) -> dict[int, CanonicalRun]:
    """The canonical runs (by problem id) of those of ``problem_ids`` whose expected
    outputs are still to compute: none stored, and not given up on (never tried, or asked
    for again with ``EXPECTED_REQUESTED``). Raises ``UnknownReferenceError`` unless every
    id names an evalplus problem of ``benchmark_id``."""
    rows = (
        await session.execute(
            select(
                Problem.id,
                Problem.task_id,
                Problem.prompt,
                Problem.canonical_solution,
                Problem.entry_point,
                Problem.oracle,
            ).where(
                Problem.id.in_(problem_ids),
                Problem.benchmark_id == benchmark_id,
                Problem.ground_truth == GroundTruthKind.OUTPUTS.value,
                Problem.oracle.is_not(None),
            )
        )
    ).all()
    missing = set(problem_ids) - {row[0] for row in rows}
    if missing:
        raise UnknownReferenceError(
            f"no evalplus problems {sorted(missing)[:10]} in benchmark {benchmark_id}"
        )
    runs: dict[int, CanonicalRun] = {}
    for pid, task_id, prompt, canonical, entry, raw in rows:
        oracle = Oracle.model_validate(raw)
        if oracle.expected is None and oracle.unavailable in (None, EXPECTED_REQUESTED):
            runs[pid] = CanonicalRun(task_id, prompt + canonical, entry, oracle)
    return runs


async def save_expected(session: AsyncSession, oracles: Mapping[int, Oracle]) -> None:
    """Store problems' oracles with their expected outputs (or why there are none); a
    problem whose expected outputs are stored already keeps them."""
    for problem_id, oracle in oracles.items():
        await session.execute(
            update(Problem)
            .where(Problem.id == problem_id, Problem.oracle.op("->>")("expected").is_(None))
            .values(oracle=oracle.model_dump(mode="json"))
        )
