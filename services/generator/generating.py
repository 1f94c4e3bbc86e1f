"""The generating backend: a run's request -> prompt -> engine -> stored completions.

Completions are keyed by (model, problem, role, *generation*, sample index), where the
generation names everything that shapes the samples: the run's seed, the sampling
parameters and a digest of the prompt. So

- a run repeated with the same seed and settings reuses the stored samples;
- a redelivered request whose samples were committed generates nothing;
- a generator killed while generating committed nothing (one transaction per
  request), and the redelivered request asks the engine again with the same seed.

The engine's seed is derived from the run's seed, the task id, the role and the first
sample index requested, so a repeated request asks for the same samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.generator.backends import Work
from services.generator.engine import EngineError, Generated, PromptRequest, Sampling
from services.generator.pool import EnginePool
from shared.core.prompts import ProblemText, Prompt, build_prompt, messages_from_json
from shared.core.sampling import SamplingSettings
from shared.db.models import Completion, Problem
from shared.enums import CompletionFormat, Role
from shared.errors import PermanentError
from shared.observability import metrics

log = structlog.get_logger(__name__)


class GenerationRefusedError(PermanentError):
    """The model's engine refused a request (e.g. HTTP 400): retrying cannot help."""


def generation_key(seed: int, sampling: SamplingSettings, prompt: Prompt) -> str:
    """The ``completions.generation`` of samples drawn with these settings."""
    return (
        f"seed{seed}-t{sampling.temperature:g}-p{sampling.top_p:g}-m{sampling.max_tokens}"
        f"-{prompt.digest()[:16]}"
    )


def request_seed(run_seed: int, task_id: str, role: Role, start: int) -> int:
    """The engine seed of the request for samples ``start, start + 1, ...`` (31 bits)."""
    digest = hashlib.sha256(f"{run_seed}\0{task_id}\0{role.value}\0{start}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def first_missing(have: set[int], end: int, start: int = 0) -> int:
    """The first sample index in ``start .. end - 1`` not yet stored (``end`` if none)."""
    return next((index for index in range(start, end) if index not in have), end)


def problem_text(problem: Problem) -> ProblemText:
    """The prompt material of a problem row."""
    return ProblemText(
        task_id=problem.task_id,
        prompt=problem.prompt,
        entry_point=problem.entry_point,
        test_prompt=problem.test_prompt,
        canonical_solution=problem.canonical_solution,
        solution_messages=messages_from_json(problem.solution_messages),
        test_messages=messages_from_json(problem.test_messages),
    )


def completion_rows(
    work: Work, generation: str, start: int, samples: Sequence[Generated]
) -> list[dict[str, object]]:
    """The ``completions`` rows of samples ``start, start + 1, ...`` (a NUL character,
    which PostgreSQL text cannot hold, is stored as U+FFFD)."""
    return [
        {
            "model_id": work.model.id,
            "problem_id": work.problem.id,
            "role": work.role.value,
            "generation": generation,
            "sample_index": start + offset,
            "format": work.model.format,
            "text": sample.text.replace("\x00", "\ufffd"),
            "prompt_tokens": sample.prompt_tokens,
            "completion_tokens": sample.completion_tokens,
            "finish_reason": sample.finish_reason,
            "latency_ms": sample.latency_ms,
        }
        for offset, sample in enumerate(samples)
    ]


@dataclass
class GeneratingBackend:
    """Samples completions from the model's engine (vLLM in process, or an endpoint)."""

    sessions: async_sessionmaker[AsyncSession]
    pool: EnginePool

    async def completions(self, work: Work) -> list[int]:
        """The ids of samples ``start .. start + count - 1`` of this generation,
        generating the missing."""
        fmt = CompletionFormat(work.model.format)
        prompt = build_prompt(problem_text(work.problem), work.role, fmt)
        sampling = work.generation.for_role(work.role)
        generation = generation_key(work.generation.seed, sampling, prompt)
        async with self.sessions() as session:
            have = set(
                await session.scalars(
                    select(Completion.sample_index).where(*self._where(work, generation))
                )
            )
        start = first_missing(have, work.end, work.start)
        if start < work.end:
            samples = await self._generate(work, prompt, sampling, start)
            async with self.sessions.begin() as session:
                await session.execute(
                    insert(Completion)
                    .values(completion_rows(work, generation, start, samples))
                    .on_conflict_do_nothing()
                )
        async with self.sessions() as session:
            rows = await session.execute(
                select(Completion.id, Completion.sample_index)
                .where(*self._where(work, generation))
                .order_by(Completion.sample_index)
            )
            return [completion_id for completion_id, _ in rows]

    async def _generate(
        self, work: Work, prompt: Prompt, sampling: SamplingSettings, start: int
    ) -> list[Generated]:
        request = PromptRequest(
            format=prompt.format,
            sampling=Sampling(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                n=work.end - start,
                seed=request_seed(work.generation.seed, work.problem.task_id, work.role, start),
                stop=prompt.stop,
            ),
            messages=prompt.messages,
            text=prompt.text,
            request_id=f"{work.run_id}-{work.problem.id}-{work.role.value}-{start}",
        )
        async with self.pool.lease(work.model) as engine:
            try:
                samples = await engine.generate(request)
            except EngineError as error:
                raise GenerationRefusedError(
                    f"model {work.model.name!r} refused the {work.role.value} request of "
                    f"{work.problem.task_id}: {error}"
                ) from error
        if len(samples) != request.sampling.n:
            raise GenerationRefusedError(
                f"model {work.model.name!r} returned {len(samples)} of {request.sampling.n} samples"
            )
        metrics.generated(work.model.name, samples)
        log.info(
            "generate.sampled",
            run_id=str(work.run_id),
            model=work.model.name,
            task_id=work.problem.task_id,
            role=work.role.value,
            samples=len(samples),
            tokens=sum(s.completion_tokens or 0 for s in samples),
        )
        return samples

    @staticmethod
    def _where(work: Work, generation: str) -> list[ColumnElement[bool]]:
        return [
            Completion.model_id == work.model.id,
            Completion.problem_id == work.problem.id,
            Completion.role == work.role.value,
            Completion.generation == generation,
            Completion.sample_index >= work.start,
            Completion.sample_index < work.end,
        ]
