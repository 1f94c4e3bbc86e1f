"""Generation backends. ``replay`` serves completions imported from published files."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import IMPORTED_GENERATION, Completion
from shared.enums import Role


class Backend(Protocol):
    """Produces (or finds) ``count`` completions of a model for one problem and role."""

    async def completions(
        self, session: AsyncSession, model_id: int, problem_id: int, role: Role, count: int
    ) -> list[int]:
        """Return the ids of the completions, in sample order."""
        ...


class ReplayBackend:
    """Serves the first ``count`` imported completions, in their published order."""

    async def completions(
        self, session: AsyncSession, model_id: int, problem_id: int, role: Role, count: int
    ) -> list[int]:
        """The ids of the first ``count`` imported samples (fewer if fewer were imported)."""
        rows = await session.scalars(
            select(Completion.id)
            .where(
                Completion.model_id == model_id,
                Completion.problem_id == problem_id,
                Completion.role == role.value,
                Completion.generation == IMPORTED_GENERATION,
                Completion.sample_index < count,
            )
            .order_by(Completion.sample_index)
        )
        return list(rows)
