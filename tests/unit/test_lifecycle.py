"""The transition tables of runs and problems: every allowed and every refused move."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from itertools import product

import pytest

from shared.db.models import Run, RunProblem
from shared.enums import ProblemState, RunState
from shared.runs.lifecycle import (
    advance_problem,
    advance_run,
    can_move_problem,
    can_move_run,
    problem_after,
    reopen_problem,
    run_after,
)

P, R = ProblemState, RunState
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

RUN_ORDINARY = {
    (R.PENDING, R.RUNNING),
    (R.PENDING, R.FAILED),
    (R.RUNNING, R.FINISHED),
    (R.RUNNING, R.FAILED),
}
"""Every move a message may make on a run; all other pairs are refused."""

RUN_EXPLICIT = {(R.FAILED, R.RUNNING)}
"""The moves only a named action (resume) makes."""

PROBLEM_ORDINARY = {
    (P.PENDING, P.EXTRACTED),
    (P.EXTRACTED, P.SCORED),
    (P.EXTRACTING, P.EXTRACTED),
}
"""Every move a message may make on a problem; all other pairs are refused."""

PROBLEM_EXPLICIT = {(P.SCORED, P.EXTRACTING)}
"""The moves only a named action (a new round: reopen_problem) makes."""


@pytest.mark.parametrize(("current", "target"), list(product(RunState, RunState)))
def test_run_moves(current: RunState, target: RunState) -> None:
    """A run moves exactly along the table; explicit moves only when asked explicitly."""
    assert can_move_run(current, target) is ((current, target) in RUN_ORDINARY)
    allowed = RUN_ORDINARY | RUN_EXPLICIT
    assert can_move_run(current, target, explicit=True) is ((current, target) in allowed)
    expected = target if (current, target) in RUN_ORDINARY else current
    assert run_after(current, target) is expected


@pytest.mark.parametrize(("current", "target"), list(product(ProblemState, ProblemState)))
def test_problem_moves(current: ProblemState, target: ProblemState) -> None:
    """A problem moves exactly along the table; a refused move leaves it where it is."""
    assert can_move_problem(current, target) is ((current, target) in PROBLEM_ORDINARY)
    assert can_move_problem(current, target, explicit=True) is (
        (current, target) in PROBLEM_ORDINARY | PROBLEM_EXPLICIT
    )
    expected = target if (current, target) in PROBLEM_ORDINARY else current
    assert problem_after(current, target) is expected


def test_finished_is_final() -> None:
    """Nothing, not even an explicit action, moves a finished run."""
    assert not any(can_move_run(R.FINISHED, t, explicit=True) for t in RunState)


def test_no_problem_state_goes_backwards() -> None:
    """Extracted after scored, or pending after anything, is refused."""
    assert problem_after(P.SCORED, P.EXTRACTED) is P.SCORED
    assert problem_after(P.SCORED, P.PENDING) is P.SCORED
    assert problem_after(P.EXTRACTED, P.PENDING) is P.EXTRACTED


def _problem(state: ProblemState) -> RunProblem:
    return RunProblem(run_id=uuid.uuid4(), problem_id=1, state=state.value, scored_at=None)


def test_advance_problem_stamps_scoring_and_ignores_redelivery() -> None:
    """Scoring stamps ``scored_at``; a redelivered extraction leaves a scored problem."""
    row = _problem(P.EXTRACTED)
    assert advance_problem(row, P.SCORED, now=NOW) is P.SCORED
    assert (row.state, row.scored_at) == ("scored", NOW)
    assert advance_problem(row, P.EXTRACTED) is P.SCORED
    assert (row.state, row.scored_at) == ("scored", NOW)
    pending = _problem(P.PENDING)
    assert advance_problem(pending, P.SCORED) is P.PENDING
    assert (pending.state, pending.scored_at) == ("pending", None)
    assert advance_problem(pending, P.EXTRACTED) is P.EXTRACTED
    assert pending.state == "extracted"


def _run(state: RunState, error: str | None = None) -> Run:
    return Run(id=uuid.uuid4(), state=state.value, error=error, finished_at=None)


def test_advance_run_finishes_and_fails_with_reason() -> None:
    """Finishing stamps ``finished_at``; failing records the reason, cut to 2000 chars."""
    run = _run(R.RUNNING)
    assert advance_run(run, R.FINISHED, now=NOW) is R.FINISHED
    assert (run.state, run.finished_at) == ("finished", NOW)
    failing = _run(R.RUNNING)
    assert advance_run(failing, R.FAILED, reason="x" * 3000) is R.FAILED
    assert failing.state == "failed" and failing.error == "x" * 2000


def test_advance_run_keeps_final_states_and_first_reason() -> None:
    """A dead letter after the end leaves a finished run alone; a failed run keeps its
    first reason and is not finished or resumed by an ordinary move."""
    finished = _run(R.FINISHED)
    assert advance_run(finished, R.FAILED, reason="late") is R.FINISHED
    assert (finished.state, finished.error) == ("finished", None)
    failed = _run(R.FAILED, error="first")
    assert advance_run(failed, R.FAILED, reason="second") is R.FAILED
    assert advance_run(failed, R.FINISHED) is R.FAILED
    assert advance_run(failed, R.RUNNING) is R.FAILED
    assert (failed.state, failed.error, failed.finished_at) == ("failed", "first", None)


def test_reopen_problem_moves_a_scored_problem_to_the_next_round_once() -> None:
    """A new round reopens a scored problem (its tests to extract again, its round set);
    asking again, or for an earlier round, or for a problem not scored, changes nothing."""
    row = _problem(P.SCORED)
    row.round, row.solutions_extracted, row.tests_extracted = 1, True, True
    assert reopen_problem(row, 2) is P.EXTRACTING
    assert (row.state, row.round, row.solutions_extracted, row.tests_extracted) == (
        "extracting",
        2,
        True,
        False,
    )
    assert problem_after(P.EXTRACTING, P.SCORED) is P.EXTRACTING  # not before extraction
    row.state = P.SCORED.value
    assert reopen_problem(row, 2) is P.SCORED  # already in round 2
    assert reopen_problem(row, 1) is P.SCORED
    pending = _problem(P.EXTRACTED)
    pending.round = 1
    assert reopen_problem(pending, 2) is P.EXTRACTED
    assert pending.round == 1
