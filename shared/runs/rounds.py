"""The rounds of a run with a test budget: recorded, planned and re-driven here.

A run created with a :class:`~shared.core.round_plan.Budget` records round 1 when
it is created (:func:`record_first_round`): every problem asks for the budget's first
round of test samples. When every problem of the run is scored, the scorer (with the
run locked) calls :func:`next_round`: it closes the round (the run's metrics with its
tests), reads what the executions so far show, plans the next round
(:func:`~shared.core.round_plan.plan_round`), records it, reopens the problems it
grants tests to (:func:`~shared.runs.lifecycle.reopen_problem`) and returns their
generate requests; none when the run is done.

The scorer publishes a round's requests before the transaction that records it
commits, holding the run's lock and the reopened problems' locks (so an extract
request of the new round waits until the round is recorded). If the commit fails
after the publish, the score request is retried and plans the same round again: the
plan is a function of the test samples the recorded rounds asked for alone
(:func:`round_states` leaves out samples a request of an unrecorded round may have
linked meanwhile), so it asks for the same samples, and a generate request for samples
already stored generates nothing. No round is recorded without its requests.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.allocation_rounds import (
    OrderedProblem,
    ProblemState,
    first_samples,
    revealed_state,
)
from shared.core.round_plan import Budget, Grant, first_round, plan_round
from shared.db.matrices import load_matrices
from shared.db.models import Run, RunProblem, RunRound, RunRoundProblem
from shared.db.sample_order import run_problems, sample_tests
from shared.enums import Role
from shared.messages import GenerateRequest, Message
from shared.runs.fanout import generate_requests, round_requests, solution_requests
from shared.runs.lifecycle import reopen_problem


def start_requests(
    run_id: uuid.UUID,
    problem_ids: Sequence[int],
    n_solutions: int,
    n_tests: int,
    budget: Budget | None,
) -> list[Message]:
    """The generate requests that start a run: ``n_solutions`` and ``n_tests`` samples a
    problem, or with a test budget its first round of test samples."""
    if budget is None:
        return generate_requests(run_id, problem_ids, n_solutions, n_tests)
    return solution_requests(run_id, problem_ids, n_solutions) + round_requests(
        run_id, 1, [(pid, 0, budget.first_round) for pid in problem_ids]
    )


async def _record_round(
    session: AsyncSession,
    run_id: uuid.UUID,
    round_no: int,
    problem_ids: Sequence[int],
    grants: Sequence[Grant],
) -> None:
    """Insert a round and its problems' grants (a round recorded already is kept)."""
    await session.execute(
        insert(RunRound)
        .values(
            run_id=run_id,
            round=round_no,
            units=sum(g.granted for g in grants),
            spent_before=sum(g.tests_before for g in grants),
            problems=sum(1 for g in grants if g.granted),
        )
        .on_conflict_do_nothing()
    )
    if problem_ids:
        await session.execute(
            insert(RunRoundProblem)
            .values(
                [
                    {
                        "run_id": run_id,
                        "round": round_no,
                        "problem_id": pid,
                        "tests_before": g.tests_before,
                        "granted": g.granted,
                        "estimate": None
                        if g.estimate is None or math.isnan(g.estimate)
                        else g.estimate,
                        "reason": g.reason,
                    }
                    for pid, g in zip(problem_ids, grants, strict=True)
                ]
            )
            .on_conflict_do_nothing()
        )


async def record_first_round(
    session: AsyncSession, run_id: uuid.UUID, problem_ids: Sequence[int], budget: Budget
) -> None:
    """Record round 1 of a new run with a test budget; its requests are the creator's
    to publish (:func:`start_requests`)."""
    await _record_round(session, run_id, 1, problem_ids, first_round(budget, len(problem_ids)))


async def latest_round(session: AsyncSession, run_id: uuid.UUID) -> RunRound | None:
    """The run's latest round, ``None`` for a run without a test budget."""
    row: RunRound | None = await session.scalar(
        select(RunRound).where(RunRound.run_id == run_id).order_by(RunRound.round.desc()).limit(1)
    )
    return row


async def tests_asked(session: AsyncSession, run_id: uuid.UUID) -> dict[int, int]:
    """Per problem, the test samples its rounds asked for so far."""
    rows = await session.execute(
        select(RunRoundProblem.problem_id, func.sum(RunRoundProblem.granted))
        .where(RunRoundProblem.run_id == run_id)
        .group_by(RunRoundProblem.problem_id)
    )
    return {pid: int(total) for pid, total in rows}


async def round_states(session: AsyncSession, run: Run) -> tuple[list[int], list[ProblemState]]:
    """The run's problems in benchmark order and what the executions so far show of
    each (:func:`~shared.core.allocation_rounds.revealed_state`, every stored test
    sample run); a problem without solution samples has no groups."""
    problems = await run_problems(session, run)
    matrices = await load_matrices(session, run, problems)
    orders = await sample_tests(session, run.id, [p.id for p in problems])
    asked = await tests_asked(session, run.id)
    budget = Budget.from_config(run.config)
    lambdas = budget.lambdas if budget is not None else None
    states: list[ProblemState] = []
    for m in matrices:
        revealed = asked.get(m.problem_id, m.test_samples)
        if not m.candidates:
            states.append(ProblemState(revealed, revealed, (), (), math.nan))
            continue
        ordered = OrderedProblem(m.problem_matrix(), tuple(orders.get(m.problem_id, ())))
        state = revealed_state(
            first_samples(ordered, revealed), revealed, max(run.n_tests, revealed)
        )
        if lambdas is not None:
            state = replace(state, predicted=float(lambdas[m.task_id]))
        states.append(state)
    return [p.id for p in problems], states


async def next_round(
    session: AsyncSession, run: Run, budget: Budget, metrics: Mapping[str, float]
) -> list[Message]:
    """With ``run`` locked and every problem of it scored: close its latest round with
    the run's ``metrics`` now, plan the next one and record it, reopen the problems it
    grants tests to (locked), and return their generate requests, to publish before the
    transaction commits; none when the run is done."""
    current = await latest_round(session, run.id)
    if current is None:
        raise LookupError(f"run {run.id} has a test budget but no round")
    if current.scored_at is None:
        current.metrics = dict(metrics)
        current.scored_at = datetime.now(UTC)
    problem_ids, states = await round_states(session, run)
    plan = plan_round(states, budget)
    if plan is None:
        return []
    round_no = current.round + 1
    await _record_round(session, run.id, round_no, problem_ids, plan)
    granted = {pid: g for pid, g in zip(problem_ids, plan, strict=True) if g.granted}
    rows = await session.scalars(
        select(RunProblem)
        .where(RunProblem.run_id == run.id, RunProblem.problem_id.in_(granted))
        .with_for_update()
    )
    for row in rows:
        reopen_problem(row, round_no)
    return round_requests(
        run.id, round_no, [(pid, g.tests_before, g.granted) for pid, g in granted.items()]
    )


async def problem_requests(session: AsyncSession, run: Run, row: RunProblem) -> list[Message]:
    """The generate requests that re-drive a run problem whose extraction is not
    complete (``coderm resume``): its round's, for the roles not extracted yet."""
    messages: list[Message] = []
    if not row.solutions_extracted:
        messages += solution_requests(run.id, [row.problem_id], run.n_solutions)
    if not row.tests_extracted:
        grant = await session.get(RunRoundProblem, (run.id, row.round, row.problem_id))
        if grant is None:
            messages.append(
                GenerateRequest(
                    run_id=run.id, problem_id=row.problem_id, role=Role.TEST, count=run.n_tests
                )
            )
        else:
            messages += round_requests(
                run.id, row.round, [(row.problem_id, grant.tests_before, grant.granted)]
            )
    return messages
