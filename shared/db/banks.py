"""Test banks for the reward gateway, made from a finished run's unit tests."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Problem, Run, RunProblem
from shared.db.queries import run_test_ids
from shared.db.reward_models import TestBank, TestBankTest
from shared.enums import ProblemState


async def banks_from_run(session: AsyncSession, run: Run) -> dict[str, int]:
    """A test bank per scored problem of ``run`` with at least one test: its unique
    tests, each weighted by the test samples that yielded it, run as the run ran them
    (its execution limits and profile, so the run's verdicts are reused). Idempotent:
    a problem's bank from the same run is made once. Returns task id -> bank id."""
    problems = list(
        await session.execute(
            select(Problem.id, Problem.task_id)
            .join(RunProblem, RunProblem.problem_id == Problem.id)
            .where(RunProblem.run_id == run.id, RunProblem.state == ProblemState.SCORED.value)
            .order_by(Problem.position)
        )
    )
    source = f"run:{run.id}"
    out: dict[str, int] = {}
    for problem_id, task_id in problems:
        weights = Counter(await session.scalars(run_test_ids(run.id, problem_id)))
        if not weights:
            continue
        await session.execute(
            insert(TestBank)
            .values(
                problem_id=problem_id,
                source=source,
                style=run.test_style,
                exec_profile=run.exec_profile,
                limits=run.config["limits"],
            )
            .on_conflict_do_nothing()
        )
        bank_id = await session.scalar(
            select(TestBank.id).where(TestBank.problem_id == problem_id, TestBank.source == source)
        )
        assert bank_id is not None
        await session.execute(
            insert(TestBankTest)
            .values(
                [
                    {"bank_id": bank_id, "unit_test_id": tid, "weight": weight}
                    for tid, weight in weights.items()
                ]
            )
            .on_conflict_do_nothing()
        )
        out[task_id] = bank_id
    return out
