"""The one owner of the states of runs and of the problems in a run.

Every service writes ``runs.state`` and ``run_problems.state`` through this module: the
moves allowed are data (:data:`RUN_MOVES`, :data:`PROBLEM_MOVES`), the pure
:func:`can_move_run` / :func:`can_move_problem` and :func:`run_after` /
:func:`problem_after` read them, and the helpers below apply a move to a row the caller
holds locked (``SELECT ... FOR UPDATE``), together with what goes with it (the time a
problem was scored or a run finished, the reason a run failed).

A move the table does not hold changes nothing and leaves the row in the state it has,
so a message delivered again can never move a state backwards: an ``ExtractRequest``
redelivered after its problem was scored leaves it scored, a dead letter that arrives
after the run finished leaves it finished.

A run::

    pending ──> running ──> finished        running -> finished: the scorer, once every
       │          │  ^                      problem is scored; finished is final
       │          v  ┆ resume (explicit)
       └──────> failed                      -> failed: a message naming the run was
                                            dead-lettered (runs.error says why)

A problem in a run::

    pending ──> extracted ──> scored        pending -> extracted: the extractor, once
                   ^            ┆           both roles are in; extracted -> scored: the
                   │            v           scorer, once its matrix is complete
                   └──── extracting         scored -> extracting (explicit): a new round
                                            of a run with a test budget gives the
                                            problem more tests (:func:`reopen_problem`);
                                            extracting -> extracted: the extractor, once
                                            the round's tests are in

A move marked *explicit* (dotted above) is never made by a message: only a named
action makes it. ``failed -> running`` is :func:`resume_run` (``coderm resume``),
which also clears ``runs.error``; resuming a running run only clears it.
``scored -> extracting`` is :func:`reopen_problem`, called by the round planner
(:mod:`shared.runs.rounds`) with the run locked; it also moves the problem to the new
round (``run_problems.round``), so that the messages of an earlier round, redelivered
late, no longer move it (the extractor compares their round with the problem's).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Run, RunProblem
from shared.enums import ProblemState, RunState

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Move(Generic[S]):
    """One allowed change of state, from ``source`` to ``target``."""

    source: S
    target: S
    explicit: bool = False
    """Made only by a named operator action (:func:`resume_run`), never by a message."""


RUN_MOVES: tuple[Move[RunState], ...] = (
    Move(RunState.PENDING, RunState.RUNNING),
    Move(RunState.PENDING, RunState.FAILED),
    Move(RunState.RUNNING, RunState.FINISHED),
    Move(RunState.RUNNING, RunState.FAILED),
    Move(RunState.FAILED, RunState.RUNNING, explicit=True),
)
"""The moves of a run's state."""

PROBLEM_MOVES: tuple[Move[ProblemState], ...] = (
    Move(ProblemState.PENDING, ProblemState.EXTRACTED),
    Move(ProblemState.EXTRACTED, ProblemState.SCORED),
    Move(ProblemState.SCORED, ProblemState.EXTRACTING, explicit=True),
    Move(ProblemState.EXTRACTING, ProblemState.EXTRACTED),
)
"""The moves of a problem's state in a run."""

REASON_LIMIT = 2000
"""The longest reason kept in ``runs.error``."""


def can_move(moves: Iterable[Move[S]], current: S, target: S, *, explicit: bool = False) -> bool:
    """Whether ``moves`` let a row go from ``current`` to ``target``; an explicit move
    only when the caller is the named action that makes it (``explicit``). Staying in
    the same state is not a move."""
    return any(
        m.source == current and m.target == target and (explicit or not m.explicit) for m in moves
    )


def can_move_run(current: RunState, target: RunState, *, explicit: bool = False) -> bool:
    """Whether a run may go from ``current`` to ``target`` (see :data:`RUN_MOVES`)."""
    return can_move(RUN_MOVES, current, target, explicit=explicit)


def can_move_problem(
    current: ProblemState, target: ProblemState, *, explicit: bool = False
) -> bool:
    """Whether a problem may go from ``current`` to ``target`` (see :data:`PROBLEM_MOVES`)."""
    return can_move(PROBLEM_MOVES, current, target, explicit=explicit)


def run_after(current: RunState, target: RunState, *, explicit: bool = False) -> RunState:
    """The state a run in ``current`` has after it is asked to go to ``target``:
    ``target`` when the move is allowed, else ``current`` unchanged."""
    return target if can_move_run(current, target, explicit=explicit) else current


def problem_after(current: ProblemState, target: ProblemState) -> ProblemState:
    """The state a problem in ``current`` has after it is asked to go to ``target``:
    ``target`` when the move is allowed, else ``current`` unchanged."""
    return target if can_move_problem(current, target) else current


def advance_problem(
    row: RunProblem, target: ProblemState, *, now: datetime | None = None
) -> ProblemState:
    """Move a locked run problem towards ``target`` if the table allows it (a scored
    problem gets ``scored_at``); return the state it has now, unchanged otherwise."""
    current = ProblemState(row.state)
    after = problem_after(current, target)
    if after is not current:
        row.state = after.value
        if after is ProblemState.SCORED:
            row.scored_at = now or datetime.now(UTC)
    return after


def advance_run(
    run: Run, target: RunState, *, reason: str | None = None, now: datetime | None = None
) -> RunState:
    """Move a locked run towards ``target`` by an ordinary move, if the table allows it;
    return the state it has now, unchanged otherwise.

    A finished run gets ``finished_at``; a failed one ``reason`` in ``runs.error`` (a run
    already failed keeps the first reason, the cause to fix).
    """
    current = RunState(run.state)
    after = run_after(current, target)
    if after is not current:
        run.state = after.value
        if after is RunState.FINISHED:
            run.finished_at = now or datetime.now(UTC)
        if after is RunState.FAILED:
            run.error = (reason or "failed")[:REASON_LIMIT]
    return after


def reopen_problem(row: RunProblem, round_no: int) -> ProblemState:
    """Give a locked, scored run problem the tests of round ``round_no`` of its run's test
    budget: scored -> extracting (an explicit move), its tests to extract again, its
    round set. A problem in any other state, or already in that round, is left as it
    is. Returns the state it has now."""
    current = ProblemState(row.state)
    if row.round >= round_no or not can_move_problem(
        current, ProblemState.EXTRACTING, explicit=True
    ):
        return current
    row.state = ProblemState.EXTRACTING.value
    row.tests_extracted = False
    row.round = round_no
    return ProblemState.EXTRACTING


async def lock_run(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """The run, locked ``FOR UPDATE`` until the transaction ends and read afresh (a
    copy the session already holds is refreshed); ``None`` if there is no such run."""
    run: Run | None = await session.scalar(
        select(Run)
        .where(Run.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return run


async def fail_run(session: AsyncSession, run_id: uuid.UUID, reason: str) -> RunState | None:
    """Mark a run failed with ``reason`` (a finished run stays finished, a failed one
    keeps its first reason); its state now, or ``None`` if there is no such run."""
    run = await lock_run(session, run_id)
    if run is None:
        return None
    return advance_run(run, RunState.FAILED, reason=reason)


async def resume_run(session: AsyncSession, run: Run) -> RunState:
    """Take a run back to running for ``coderm resume``: failed (or pending) -> running,
    and ``runs.error`` cleared; a running run only has its error cleared; a finished run
    is left as it is. Returns the run's state now."""
    locked = await lock_run(session, run.id)
    if locked is None:
        raise LookupError(f"no run {run.id}")
    current = RunState(locked.state)
    if current is RunState.FINISHED:
        return current
    after = run_after(current, RunState.RUNNING, explicit=True)
    locked.state = after.value
    locked.error = None
    return after
