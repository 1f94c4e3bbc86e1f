"""Queries more than one service needs."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import (
    Completion,
    CompletionSolution,
    CompletionTest,
    RunCompletion,
    RunProblem,
)
from shared.enums import Role
from shared.errors import UnknownReferenceError
from shared.runs.lifecycle import fail_run


async def lock_run_problem(session: AsyncSession, run_id: uuid.UUID, problem_id: int) -> RunProblem:
    """The run's problem row, locked ``FOR UPDATE`` until the transaction ends.

    The lock serialises the services' decisions about one problem (both roles
    extracted? already scored?) across replicas.
    """
    row = await session.scalar(
        select(RunProblem)
        .where(RunProblem.run_id == run_id, RunProblem.problem_id == problem_id)
        .with_for_update()
    )
    if row is None:
        raise UnknownReferenceError(f"run {run_id} has no problem {problem_id}")
    return row


def run_solution_samples(run_id: uuid.UUID, problem_id: int) -> Select[int | None]:
    """The solution id of each of a run's solution samples of a problem, in sample order
    (``None`` for a sample that yielded no code; an id repeats for duplicate samples)."""
    return (
        select(CompletionSolution.solution_id)
        .select_from(RunCompletion)
        .join(Completion, Completion.id == RunCompletion.completion_id)
        .outerjoin(CompletionSolution, CompletionSolution.completion_id == Completion.id)
        .where(
            RunCompletion.run_id == run_id,
            RunCompletion.problem_id == problem_id,
            RunCompletion.role == Role.SOLUTION.value,
        )
        .order_by(Completion.sample_index)
    )


def run_test_ids(run_id: uuid.UUID, problem_id: int) -> Select[int]:
    """The unit-test ids a run's test samples of a problem yielded (an id repeats once
    per sample that yielded it, which is the test's weight in CodeT's agreement)."""
    return (
        select(CompletionTest.unit_test_id)
        .join(RunCompletion, RunCompletion.completion_id == CompletionTest.completion_id)
        .where(
            RunCompletion.run_id == run_id,
            RunCompletion.problem_id == problem_id,
            RunCompletion.role == Role.TEST.value,
        )
    )


async def note_dead_letter_on_run(
    sessions: async_sessionmaker[AsyncSession], kind: str, body: bytes, reason: str
) -> None:
    """Fail the run a dead-lettered message names (when its body names one), with the
    reason in ``runs.error``, so that ``coderm run``/``status`` stop and say why the run
    cannot finish by itself; a finished run stays finished (see :mod:`shared.runs.lifecycle`)."""
    try:
        run_id = uuid.UUID(str(json.loads(body)["run_id"]))
    except (ValueError, KeyError, TypeError):
        return
    async with sessions.begin() as session:
        await fail_run(session, run_id, f"{kind} message dead-lettered: {reason}")
