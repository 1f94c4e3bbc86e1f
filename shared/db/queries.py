"""Queries more than one service needs."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import RunProblem
from shared.errors import UnknownReferenceError


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
