"""The generator's message handler: a run's generate request -> completions -> extract."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.generator.backends import Backend, Work
from shared.broker import Broker
from shared.core.sampling import RunGeneration
from shared.db.models import Model, Problem, Run, RunCompletion
from shared.enums import Role
from shared.errors import UnknownReferenceError
from shared.messages import ExtractRequest, GenerateRequest

log = structlog.get_logger(__name__)


async def load_work(session: AsyncSession, message: GenerateRequest) -> Work:
    """Resolve a request's run, model and problem; unknown ones are permanent errors."""
    run = await session.get(Run, message.run_id)
    if run is None:
        raise UnknownReferenceError(f"run {message.run_id} not found")
    model_id = run.policy_model_id if message.role is Role.SOLUTION else run.test_model_id
    model = await session.get(Model, model_id)
    if model is None:
        raise UnknownReferenceError(f"model {model_id} not found")
    problem = await session.get(Problem, message.problem_id)
    if problem is None:
        raise UnknownReferenceError(f"problem {message.problem_id} not found")
    return Work(
        run_id=run.id,
        model=model,
        problem=problem,
        role=message.role,
        count=message.count,
        start=message.start,
        generation=RunGeneration.model_validate(run.config.get("generation", {})),
    )


@dataclass
class GenerateHandler:
    """Links a run to the completions its backend serves, then asks for extraction.

    No transaction is held while a backend generates: the request is resolved in one,
    the backend stores what it samples in its own, and the links are written in a
    third; each is idempotent, so a redelivered request changes nothing.
    """

    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    backends: dict[str, Backend]

    async def __call__(self, message: GenerateRequest) -> None:
        """Handle one ``GenerateRequest``; idempotent under redelivery."""
        async with self.sessions() as session:
            work = await load_work(session, message)
        backend = self.backends.get(work.model.backend)
        if backend is None:
            raise UnknownReferenceError(f"no backend {work.model.backend!r} in this generator")
        ids = await backend.completions(work)
        if ids:
            async with self.sessions.begin() as session:
                await session.execute(
                    insert(RunCompletion)
                    .values(
                        [
                            {
                                "run_id": message.run_id,
                                "completion_id": cid,
                                "problem_id": message.problem_id,
                                "role": message.role.value,
                            }
                            for cid in ids
                        ]
                    )
                    .on_conflict_do_nothing()
                )
        if len(ids) < message.count:
            log.warning(
                "generate.short",
                run_id=str(message.run_id),
                problem_id=message.problem_id,
                role=message.role.value,
                wanted=message.count,
                got=len(ids),
            )
        await self.broker.publish(
            ExtractRequest(
                run_id=message.run_id,
                problem_id=message.problem_id,
                role=message.role,
                completion_ids=ids,
                round=message.round,
            )
        )
