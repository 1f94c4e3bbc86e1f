"""The message contract between services: frozen pydantic models, JSON on the wire.

Messages carry ids, never code: code lives in PostgreSQL. Every message has a
``schema_version`` so that a consumer can refuse what it does not understand. Most are
about one problem of a run (:class:`Message`); :class:`ComputeExpected` is about a
benchmark's problems, before any run.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.enums import Role


class BaseMessage(BaseModel):
    """Base of every message: frozen, no unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1

    def to_body(self) -> bytes:
        """Serialise to the JSON body published on the broker."""
        return self.model_dump_json().encode()


class Message(BaseMessage):
    """Base of the messages about one problem of a run."""

    run_id: uuid.UUID
    problem_id: int


class GenerateRequest(Message):
    """Ask the generator for ``count`` completions of ``role`` for one problem of a run:
    samples ``start .. start + count - 1`` (a later round of a run with a test budget
    asks for the samples after those it has), for round ``round``."""

    kind: Literal["generate"] = "generate"
    role: Role
    count: int = Field(ge=0, le=10_000)
    start: int = Field(default=0, ge=0, le=10_000)
    round: int = Field(default=1, ge=1)


class ExtractRequest(Message):
    """Ask the extractor to turn these completions into solutions or unit tests."""

    kind: Literal["extract"] = "extract"
    role: Role
    completion_ids: list[int]
    round: int = Field(default=1, ge=1)
    """The round the completions were asked for; one of an earlier round than the
    problem's is extracted but no longer moves the problem."""


class ExecuteBatch(Message):
    """Ask the executor to run these solutions against all the run's tests of the problem,
    and to label each with the benchmark's own tests."""

    kind: Literal["execute"] = "execute"
    batch_no: int = Field(ge=0)
    solution_ids: list[int]


class ScoreProblem(Message):
    """Tell the scorer that a problem's executions may be complete."""

    kind: Literal["score"] = "score"


EXPECTED_CHUNK = 20
"""The most problems one ``ComputeExpected`` names (they share one sandbox container)."""
EXPECTED_REQUESTED = "requested again, not computed yet"
"""``Oracle.unavailable`` of a problem whose canonical solution failed before and whose
expected outputs an import asked for again: still unlabelled, and not yet retried."""


class ComputeExpected(BaseMessage):
    """Ask the executor to run the canonical solutions of these evalplus problems of a
    benchmark on their inputs and store the outputs (``Problem.oracle.expected``), or why
    there are none (``Problem.oracle.unavailable``)."""

    kind: Literal["expected"] = "expected"
    benchmark_id: int
    problem_ids: list[int] = Field(min_length=1, max_length=EXPECTED_CHUNK)


PAIRS_LIMIT = 1024
"""The most solutions one ``ExecutePairs`` names."""


class ExecutePairs(BaseMessage):
    """Ask the executor, ahead of batch runs, to run these solutions against every test of
    a test bank (pairs with a stored verdict are skipped), store the verdicts, and say
    so to ``reply_to`` (a reply queue of the reward gateway) with ``correlation_id``."""

    kind: Literal["pairs"] = "pairs"
    bank_id: int
    solution_ids: list[int] = Field(min_length=1, max_length=PAIRS_LIMIT)
    reply_to: str = Field(min_length=1, max_length=255)
    correlation_id: str = Field(min_length=1, max_length=100)


class PairsDone(BaseMessage):
    """The executor's reply to an ``ExecutePairs``: how many pairs it ran."""

    kind: Literal["pairs-done"] = "pairs-done"
    correlation_id: str
    executed: int
