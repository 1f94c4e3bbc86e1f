"""Generation backends: how a model's completions are obtained.

``replay`` serves completions imported from published files; ``openai`` and ``vllm``
generate them (services/generator/generating.py) with an engine from the process's
:class:`EnginePool`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.sampling import RunGeneration
from shared.db.models import IMPORTED_GENERATION, Completion, Model, Problem
from shared.enums import Role


@dataclass(frozen=True)
class Work:
    """One generate request, resolved: ``count`` completions of ``role`` for a run's
    problem from ``model`` (rows detached from their session), sampled as the run says."""

    run_id: uuid.UUID
    model: Model
    problem: Problem
    role: Role
    count: int
    generation: RunGeneration
    start: int = 0
    """The first sample index asked for: samples ``start .. start + count - 1``."""

    @property
    def end(self) -> int:
        """One past the last sample index asked for."""
        return self.start + self.count


class Backend(Protocol):
    """Produces (or finds) the completions of one request."""

    async def completions(self, work: Work) -> list[int]:
        """Return the ids of the completions, in sample order."""
        ...


@dataclass
class ReplayBackend:
    """Serves imported completions ``start .. start + count - 1``, in their published
    order."""

    sessions: async_sessionmaker[AsyncSession]

    async def completions(self, work: Work) -> list[int]:
        """The ids of the imported samples asked for (fewer if fewer were imported)."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Completion.id)
                .where(
                    Completion.model_id == work.model.id,
                    Completion.problem_id == work.problem.id,
                    Completion.role == work.role.value,
                    Completion.generation == IMPORTED_GENERATION,
                    Completion.sample_index >= work.start,
                    Completion.sample_index < work.end,
                )
                .order_by(Completion.sample_index)
            )
            return list(rows)
