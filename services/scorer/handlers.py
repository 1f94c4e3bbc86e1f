"""The scorer's handler: score a problem once its matrix is complete; then plan the
run's next round of tests, or finish it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer import store
from shared.broker import Broker
from shared.core.round_plan import Budget
from shared.core.scoring import ProblemScore, run_metrics, score_problem
from shared.core.strategies import StrategyResult
from shared.db.models import Run
from shared.db.queries import lock_run_problem
from shared.enums import ProblemState
from shared.messages import Message, ScoreProblem
from shared.runs import rounds
from shared.runs.lifecycle import advance_problem, can_move_problem

log = structlog.get_logger(__name__)


UNLABELLED = "none"
"""``selections.detail["ground_truth"]`` of a problem without hidden tests."""


def without_correctness(results: dict[str, StrategyResult]) -> dict[str, StrategyResult]:
    """Selections of a problem without hidden tests: the chosen solutions stand, but the
    scores (expected correctness) are unknown, so NaN, never 0; run metrics leave such
    problems out (none at all when no problem is labelled)."""
    return {
        name: StrategyResult(math.nan, result.chosen, {**result.detail, "ground_truth": UNLABELLED})
        for name, result in results.items()
    }


@dataclass
class ScoreHandler:
    """Scores problems whose executions are all in; once a run's problems are all
    scored, plans its next round (a run with a test budget left) or finishes it."""

    sessions: async_sessionmaker[AsyncSession]
    broker: Broker

    async def __call__(self, message: ScoreProblem) -> None:
        """Handle one ``ScoreProblem``; a repeated or early message is harmless.

        Once the problem is scored (by this message or an earlier delivery of it), the
        run goes on if it was its last problem: a run with a test budget left gets its
        next round, any other run is finished. A scorer killed between the transactions
        does that when the message is redelivered.
        """
        if await self._score(message):
            await self._advance(message)

    async def _score(self, message: ScoreProblem) -> bool:
        """Score the problem if it is extracted and its matrix complete; whether it is
        scored now (a problem not extracted yet waits for the extractor's request)."""
        async with self.sessions.begin() as session:
            row = await lock_run_problem(session, message.run_id, message.problem_id)
            state = ProblemState(row.state)
            if state is ProblemState.SCORED:
                return True
            if not can_move_problem(state, ProblemState.SCORED):
                return False
            if await store.batches_pending(session, message.run_id, message.problem_id):
                return False
            run = await session.get(Run, message.run_id)
            assert run is not None
            matrix = await store.load_matrix(session, run, message.problem_id)
            if matrix is None:
                return False
            results = score_problem(matrix.candidates, matrix.test_weights)
            if not matrix.labelled:
                results = without_correctness(results)
            await store.save_selections(session, message.run_id, message.problem_id, results)
            advance_problem(row, ProblemState.SCORED)
        log.info(
            "problem.scored",
            run_id=str(message.run_id),
            problem_id=message.problem_id,
            **{name: round(result.score, 4) for name, result in results.items()},
        )
        return True

    async def _advance(self, message: ScoreProblem) -> None:
        """With the run locked, once every problem of it is scored: record its next
        round and publish the round's requests before the round commits (a run with a
        test budget left: see :mod:`shared.runs.rounds`), or finish it."""
        async with self.sessions.begin() as session:
            run = await store.lock_unfinished_run(session, message.run_id)
            if run is None:
                return
            selections = await store.load_selections(session, run.id)
            metrics = run_metrics(
                ProblemScore(s.strategy, s.score, s.detail)
                for s in selections
                if s.detail.get("ground_truth") != UNLABELLED
            )
            budget = Budget.from_config(run.config)
            requests: list[Message] = []
            if budget is not None:
                figures = {name: value for name, (value, _) in metrics.items()}
                requests = await rounds.next_round(session, run, budget, figures)
            if requests:
                await session.flush()
                await self.broker.publish_many(requests)
            else:
                await store.finish_run(session, run, metrics)
        if requests:
            log.info("round.planned", run_id=str(message.run_id), requests=len(requests))
        else:
            log.info(
                "run.finished",
                run_id=str(message.run_id),
                **{name: round(value, 2) for name, (value, _) in metrics.items()},
            )
