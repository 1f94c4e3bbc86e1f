"""The message contract between services: frozen pydantic models, JSON on the wire.

Messages carry ids, never code: code lives in PostgreSQL. Every message has a
``schema_version`` so that a consumer can refuse what it does not understand.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.enums import Role


class Message(BaseModel):
    """Base of every message: frozen, no unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    run_id: uuid.UUID
    problem_id: int

    def to_body(self) -> bytes:
        """Serialise to the JSON body published on the broker."""
        return self.model_dump_json().encode()


class GenerateRequest(Message):
    """Ask the generator for ``count`` completions of ``role`` for one problem of a run."""

    kind: Literal["generate"] = "generate"
    role: Role
    count: int = Field(ge=0, le=10_000)


class ExtractRequest(Message):
    """Ask the extractor to turn these completions into solutions or unit tests."""

    kind: Literal["extract"] = "extract"
    role: Role
    completion_ids: list[int]


class ExecuteBatch(Message):
    """Ask the executor to run these solutions against all the run's tests of the problem,
    and to label each with the benchmark's own tests."""

    kind: Literal["execute"] = "execute"
    batch_no: int = Field(ge=0)
    solution_ids: list[int]


class ScoreProblem(Message):
    """Tell the scorer that a problem's executions may be complete."""

    kind: Literal["score"] = "score"
