"""The scorer's handler: score a problem once its matrix is complete; close the run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer import store
from shared.core.scoring import ProblemScore, run_metrics, score_problem
from shared.core.strategies import StrategyResult
from shared.db.models import Run
from shared.db.queries import lock_run_problem
from shared.enums import ProblemState
from shared.messages import ScoreProblem
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
    """Scores problems whose executions are all in, and finishes runs."""

    sessions: async_sessionmaker[AsyncSession]

    async def __call__(self, message: ScoreProblem) -> None:
        """Handle one ``ScoreProblem``; a repeated or early message is harmless.

        Once the problem is scored (by this message or an earlier delivery of it), the
        run is finished if it was its last problem: a scorer killed between the two
        transactions finishes the run when the message is redelivered.
        """
        if await self._score(message):
            await self._maybe_finish(message)

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

    async def _maybe_finish(self, message: ScoreProblem) -> None:
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
            await store.finish_run(session, run, metrics)
        log.info(
            "run.finished",
            run_id=str(message.run_id),
            **{name: round(value, 2) for name, (value, _) in metrics.items()},
        )
