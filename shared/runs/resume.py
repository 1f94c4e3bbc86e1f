"""Taking a run back up after its cause of failure is fixed (``coderm resume``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ExecutionBatch, Run, RunProblem
from shared.enums import ProblemState, RunState
from shared.messages import Message, ScoreProblem
from shared.runs.fanout import ROUND_BATCH_STRIDE, batch_requests
from shared.runs.lifecycle import resume_run
from shared.runs.rounds import problem_requests


async def resume_messages(session: AsyncSession, run: Run) -> list[Message]:
    """Take a run back to running (a failed run, its error cleared: see
    :func:`shared.runs.lifecycle.resume_run`) and return the messages that re-drive every
    unfinished problem of it; none for a finished run, and one score request that closes
    it when every problem is scored already.

    All of them are idempotent: a problem whose extraction is incomplete is generated
    again (the roles not extracted, for its round of a run with a test budget); an
    extracted problem gets its round's batches again (cached pairs are skipped, and
    every batch ends with a score request); a score request of a run whose problems are
    all scored plans its next round, if it has a test budget left.
    """
    if await resume_run(session, run) is RunState.FINISHED:
        return []
    rows = await session.scalars(
        select(RunProblem).where(
            RunProblem.run_id == run.id, RunProblem.state != ProblemState.SCORED.value
        )
    )
    messages: list[Message] = []
    for row in rows:
        if not (row.solutions_extracted and row.tests_extracted):
            messages += await problem_requests(session, run, row)
            continue
        batches = await session.scalars(
            select(ExecutionBatch)
            .where(
                ExecutionBatch.run_id == run.id,
                ExecutionBatch.problem_id == row.problem_id,
                ExecutionBatch.batch_no >= (row.round - 1) * ROUND_BATCH_STRIDE,
            )
            .order_by(ExecutionBatch.batch_no)
        )
        messages += batch_requests(
            run.id,
            row.problem_id,
            [(batch.batch_no, [int(s) for s in batch.solution_ids]) for batch in batches],
        )
    if not messages:
        messages = await _closing_score(session, run)
    return messages


async def _closing_score(session: AsyncSession, run: Run) -> list[Message]:
    """A score request for one scored problem of a run whose problems are all scored (they
    were scored while it was failed, so nobody closed it): the scorer finishes the run."""
    problem_id = await session.scalar(
        select(RunProblem.problem_id).where(RunProblem.run_id == run.id).limit(1)
    )
    return [] if problem_id is None else [ScoreProblem(run_id=run.id, problem_id=problem_id)]
