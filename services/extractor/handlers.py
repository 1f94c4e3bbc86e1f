"""The extractor's handler: completions -> solutions / unit tests -> execution batches."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.extractor import store
from services.extractor.extraction import (
    Extracted,
    extract_chat_solution,
    extract_chat_unittest,
    extract_completion_asserts,
    extract_completion_solution,
)
from shared.broker import Broker
from shared.db.models import Completion, Problem, RunProblem
from shared.enums import CompletionFormat, ExtractionStatus, Role, TestStyle
from shared.errors import UnknownReferenceError
from shared.messages import ExecuteBatch, ExtractRequest, Message, ScoreProblem

log = structlog.get_logger(__name__)


def extract(completion: Completion, problem: Problem) -> tuple[Extracted, TestStyle | None]:
    """Extract one completion by its role and format; the test style for tests."""
    fmt = CompletionFormat(completion.format)
    if completion.role == Role.SOLUTION.value:
        if fmt is CompletionFormat.CHAT:
            return extract_chat_solution(completion.text), None
        return extract_completion_solution(problem.prompt, completion.text), None
    if fmt is CompletionFormat.CHAT:
        return extract_chat_unittest(completion.text), TestStyle.UNITTEST
    return extract_completion_asserts(completion.text, problem.entry_point), TestStyle.ASSERT


@dataclass
class ExtractHandler:
    """Extracts a batch of completions and, once both roles are in, plans execution."""

    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    solutions_per_batch: int

    async def __call__(self, message: ExtractRequest) -> None:
        """Handle one ``ExtractRequest``; idempotent under redelivery."""
        follow_ups: list[Message] = []
        async with self.sessions.begin() as session:
            problem = await session.get(Problem, message.problem_id)
            if problem is None:
                raise UnknownReferenceError(f"problem {message.problem_id} not found")
            completions = await session.scalars(
                select(Completion).where(Completion.id.in_(message.completion_ids))
            )
            statuses: dict[str, int] = {}
            for completion in completions:
                status = await self._extract_one(session, completion, problem)
                statuses[status] = statuses.get(status, 0) + 1
            row = await store.mark_extracted(
                session, message.run_id, message.problem_id, message.role
            )
            if row.solutions_extracted and row.tests_extracted:
                follow_ups = await self._plan(session, message, row)
        log.info(
            "extract.done",
            run_id=str(message.run_id),
            problem_id=message.problem_id,
            role=message.role.value,
            statuses=statuses,
        )
        await self.broker.publish_many(follow_ups)

    async def _extract_one(
        self, session: AsyncSession, completion: Completion, problem: Problem
    ) -> str:
        extracted, style = extract(completion, problem)
        await store.record_extraction(
            session, completion.id, extracted.status.value, extracted.detail
        )
        if extracted.status is not ExtractionStatus.OK:
            return extracted.status.value
        if style is None:
            solution_id = await store.upsert_solution(session, problem.id, extracted.code[0])
            await store.link_solution(session, completion.id, solution_id)
        else:
            test_ids = [
                await store.upsert_unit_test(session, problem.id, style.value, code)
                for code in extracted.code
            ]
            await store.link_tests(session, completion.id, test_ids)
        return extracted.status.value

    async def _plan(
        self, session: AsyncSession, message: ExtractRequest, row: RunProblem
    ) -> list[Message]:
        solution_ids = await store.run_solution_ids(session, message.run_id, message.problem_id)
        tests = await store.run_test_count(session, message.run_id, message.problem_id)
        batches = await store.plan_batches(
            session, row, solution_ids, tests, self.solutions_per_batch
        )
        if not batches:
            return [ScoreProblem(run_id=message.run_id, problem_id=message.problem_id)]
        return [
            ExecuteBatch(
                run_id=message.run_id,
                problem_id=message.problem_id,
                batch_no=no,
                solution_ids=batch,
            )
            for no, batch in enumerate(batches)
        ]
