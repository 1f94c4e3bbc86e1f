"""The rounds of a run with a test budget, as ``coderm status`` and the report show
them: per round the test samples granted, to how many problems, spent after it, and the
run's best-of-N figures once it was scored."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cli.blocks import Table, fmt
from shared.core.round_plan import Budget
from shared.db.models import RunRound

FIGURES = (("coderm_majority.pass@1", "majority"), ("codet.pass@1", "CodeT"))
"""The run metrics a round row shows, with their column names."""


@dataclass(frozen=True)
class RoundRow:
    """One round: its number, test samples granted in it, problems given any, test
    samples spent once it is done, and the run's metrics after it was scored (empty
    while it runs)."""

    round: int
    units: int
    problems: int
    spent_after: int
    metrics: dict[str, float]


async def load_rounds(session: AsyncSession, run_id: uuid.UUID) -> tuple[RoundRow, ...]:
    """The run's rounds in order (none for a run without a test budget)."""
    rows = await session.scalars(
        select(RunRound).where(RunRound.run_id == run_id).order_by(RunRound.round)
    )
    return tuple(
        RoundRow(
            round=r.round,
            units=r.units,
            problems=r.problems,
            spent_after=r.spent_before + r.units,
            metrics={str(k): float(v) for k, v in (r.metrics or {}).items()},
        )
        for r in rows
    )


def rounds_table(rounds: Sequence[RoundRow]) -> Table:
    """A row a round: tests granted, problems, spent after, the figures after it."""
    return Table(
        ["round", "tests", "problems", "spent", *(label for _, label in FIGURES)],
        [
            [
                str(r.round),
                str(r.units),
                str(r.problems),
                str(r.spent_after),
                *(fmt(r.metrics[name]) if name in r.metrics else "-" for name, _ in FIGURES),
            ]
            for r in rounds
        ],
    )


def budget_line(config: dict[str, Any], rounds: Sequence[RoundRow]) -> str | None:
    """``rounds: K, S/B test samples (allocation A, first round M0 a problem)``, or
    ``None`` for a run without a test budget."""
    budget = Budget.from_config(config)
    if budget is None:
        return None
    spent = rounds[-1].spent_after if rounds else 0
    return (
        f"rounds: {len(rounds)}, {spent}/{budget.total} test samples "
        f"(allocation {budget.allocation}, first round {budget.first_round} a problem)"
    )


def as_dicts(rounds: Sequence[RoundRow]) -> list[dict[str, Any]]:
    """The rounds for JSON."""
    return [
        {
            "round": r.round,
            "units": r.units,
            "problems": r.problems,
            "spent_after": r.spent_after,
            "metrics": r.metrics,
        }
        for r in rounds
    ]
