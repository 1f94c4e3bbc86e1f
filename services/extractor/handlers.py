"""The extractor's handler: completions -> solutions / unit tests -> execution batches."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.extractor import store
from shared.broker import Broker
from shared.core.batching import solutions_per_batch, split_batches
from shared.core.extraction import (
    EXTRACTION_VERSION,
    Extracted,
    content_hash,
    extract_chat_solution,
    extract_chat_unittest,
    extract_completion_asserts,
    extract_completion_solution,
)
from shared.core.extraction_ref import (
    extract_solution_ref,
    extract_unittest_ref,
    extract_verbatim,
)
from shared.db.models import Completion, Problem, RunProblem, RunRoundProblem, Solution, UnitTest
from shared.enums import CompletionFormat, ExtractionStatus, Role, TestStyle
from shared.errors import UnknownReferenceError
from shared.messages import ExtractRequest, Message
from shared.runs.fanout import ROUND_BATCH_STRIDE, batch_requests

log = structlog.get_logger(__name__)


def extract(completion: Completion, problem: Problem) -> tuple[Extracted, TestStyle | None]:
    """Extract one completion by its role and format; the test style for tests.

    ``code`` texts are taken verbatim and ``chat-ref`` answers extracted by CodeRM's
    own rules (:mod:`shared.core.extraction_ref`); tests of both are unittest
    classes.
    """
    fmt = CompletionFormat(completion.format)
    solution = completion.role == Role.SOLUTION.value
    if fmt is CompletionFormat.CODE:
        return extract_verbatim(completion.text, solution), None if solution else TestStyle.UNITTEST
    if fmt is CompletionFormat.CHAT_REF:
        if solution:
            return extract_solution_ref(completion.text), None
        return extract_unittest_ref(completion.text), TestStyle.UNITTEST
    if solution:
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
    pairs_per_batch: int

    async def __call__(self, message: ExtractRequest) -> None:
        """Handle one ``ExtractRequest``; idempotent under redelivery (a problem already
        scored stays scored and its batches are not planned again)."""
        follow_ups: list[Message] = []
        async with self.sessions.begin() as session:
            problem = await session.get(Problem, message.problem_id)
            if problem is None:
                raise UnknownReferenceError(f"problem {message.problem_id} not found")
            completions = list(
                await session.scalars(
                    select(Completion).where(Completion.id.in_(message.completion_ids))
                )
            )
            todo = [c for c in completions if c.extracted_by != EXTRACTION_VERSION]
            extracted = [(c.id, *extract(c, problem)) for c in todo]
            await self._store(session, problem.id, extracted)
            fresh = {cid: result.status.value for cid, result, _ in extracted}
            statuses = Counter(fresh.get(c.id, str(c.extraction_status)) for c in completions)
            row = await store.mark_extracted(
                session, message.run_id, message.problem_id, message.role, message.round
            )
            if row is not None and store.ready_to_plan(row):
                follow_ups = await self._plan(session, message, row)
        log.info(
            "extract.done",
            run_id=str(message.run_id),
            problem_id=message.problem_id,
            role=message.role.value,
            statuses=statuses,
        )
        await self.broker.publish_many(follow_ups)

    @staticmethod
    async def _store(
        session: AsyncSession,
        problem_id: int,
        extracted: list[tuple[int, Extracted, TestStyle | None]],
    ) -> None:
        """Write statuses, code and links of a message's completions in a few statements."""
        await store.record_extractions(
            session, [(cid, result.status.value, result.detail) for cid, result, _ in extracted]
        )
        usable = [(cid, r, style) for cid, r, style in extracted if r.status is ExtractionStatus.OK]
        solutions = [(cid, r.code[0]) for cid, r, style in usable if style is None]
        solution_ids = await store.upsert_code(
            session, Solution, {"problem_id": problem_id}, (c for _, c in solutions)
        )
        await store.link_solutions(
            session, [(cid, solution_ids[content_hash(code)]) for cid, code in solutions]
        )
        for style in TestStyle:
            tests = [(cid, r.code) for cid, r, s in usable if s is style]
            test_ids = await store.upsert_code(
                session,
                UnitTest,
                {"problem_id": problem_id, "style": style.value},
                (code for _, codes in tests for code in codes),
            )
            await store.link_tests(
                session,
                [
                    (cid, position, test_ids[content_hash(code)])
                    for cid, codes in tests
                    for position, code in enumerate(codes)
                ],
            )

    async def _plan(
        self, session: AsyncSession, message: ExtractRequest, row: RunProblem
    ) -> list[Message]:
        """Plan the batches of the problem's round: every solution against the tests
        that are new in it (round 1: all of them, and the solution's ground truth)."""
        solution_ids = await store.run_solution_ids(session, message.run_id, message.problem_id)
        tests = await store.run_test_count(session, message.run_id, message.problem_id)
        pairs = tests + 1
        if row.round > 1:
            before = await session.get(
                RunRoundProblem, (message.run_id, row.round, message.problem_id)
            )
            old = await store.run_test_count(
                session,
                message.run_id,
                message.problem_id,
                before.tests_before if before is not None else None,
            )
            pairs = tests - old
        per_batch = solutions_per_batch(
            max(pairs - 1, 0), self.pairs_per_batch, self.solutions_per_batch
        )
        batches = split_batches(solution_ids, per_batch)
        first_no = (row.round - 1) * ROUND_BATCH_STRIDE
        await store.plan_batches(session, row, batches, pairs, first_no)
        return batch_requests(
            message.run_id,
            message.problem_id,
            [(first_no + no, batch) for no, batch in enumerate(batches)],
        )
