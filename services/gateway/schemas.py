"""What the gateway's endpoints take (validated, bounded) and how a problem is named."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REQUEST_ID_CHARS = 200
GROUP_CHARS = 2000
PROMPT_CHARS = 100_000

INLINE_BENCHMARK = "inline"
"""The benchmark holding the problems requests give inline."""


class ProblemRef(BaseModel):
    """A problem by benchmark name and task id (its test bank is the newest one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    benchmark: str = Field(min_length=1, max_length=100)
    task_id: str = Field(min_length=1, max_length=200)

    @classmethod
    def from_label(cls, label: str) -> ProblemRef:
        """An OpenRLHF label: ``BENCHMARK:TASK_ID`` (e.g. ``humaneval:HumanEval/0``) or
        ``{"benchmark": ..., "task_id": ...}``; ``ValueError`` otherwise."""
        text = label.strip()
        if text.startswith("{"):
            return cls.model_validate(json.loads(text))
        benchmark, sep, task_id = text.partition(":")
        if not sep:
            raise ValueError(f"label {label[:80]!r} is not BENCHMARK:TASK_ID")
        return cls(benchmark=benchmark, task_id=task_id)

    def __str__(self) -> str:
        return f"{self.benchmark}:{self.task_id}"


class InlineProblem(BaseModel):
    """A problem given by its text rather than its name: the prompt a solution
    completes, the function's name, and optionally the prompt for its unit tests. It
    is stored once in the benchmark :data:`INLINE_BENCHMARK` under a task id derived
    from its content (:meth:`ref`), so the same problem given again is the same problem
    (and finds its test bank)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str = Field(min_length=1, max_length=PROMPT_CHARS)
    entry_point: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    test_prompt: str | None = Field(default=None, max_length=PROMPT_CHARS)

    def ref(self) -> ProblemRef:
        """The name the problem is stored under."""
        basis = json.dumps([self.prompt, self.entry_point, self.test_prompt]).encode()
        return ProblemRef(
            benchmark=INLINE_BENCHMARK, task_id=f"sha256:{hashlib.sha256(basis).hexdigest()}"
        )


AnyProblem = ProblemRef | InlineProblem


def problem_from_label(label: str) -> AnyProblem:
    """An OpenRLHF label: ``BENCHMARK:TASK_ID`` (e.g. ``humaneval:HumanEval/0``), or a
    JSON object naming the problem (``{"benchmark", "task_id"}``) or giving it
    (``{"prompt", "entry_point"}``); ``ValueError`` otherwise."""
    text = label.strip()
    if text.startswith("{"):
        data = json.loads(text)
        if isinstance(data, dict) and "prompt" in data:
            return InlineProblem.model_validate(data)
    return ProblemRef.from_label(label)


class RewardItemIn(BaseModel):
    """One response to score: its problem, the text (a chat answer with one code block,
    or bare code) and optionally its group (the responses to one prompt)."""

    model_config = ConfigDict(extra="forbid")

    problem: AnyProblem
    response: str
    group: str | None = Field(default=None, max_length=GROUP_CHARS)


class RewardsRequest(BaseModel):
    """``POST /v1/rewards``: responses, an optional id that makes a retry return the
    same answer without executing again, and free metadata stored with it (e.g. the
    policy and the training step, for reward-drift dashboards)."""

    model_config = ConfigDict(extra="forbid")

    items: list[RewardItemIn] = Field(min_length=1)
    request_id: str | None = Field(default=None, min_length=1, max_length=REQUEST_ID_CHARS)
    meta: dict[str, str | int | float] = Field(default_factory=dict, max_length=32)


class SelectRequest(BaseModel):
    """``POST /v1/select``: best-of-N among responses to one problem."""

    model_config = ConfigDict(extra="forbid")

    problem: AnyProblem
    responses: list[str] = Field(min_length=1)
    strategy: Literal["codet", "majority"] = "codet"
    request_id: str | None = Field(default=None, min_length=1, max_length=REQUEST_ID_CHARS)


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote reward request: ``query`` (prompt + response, as the trainer
    templated them), ``prompts`` and ``labels`` (one per query; here each label names
    the problem)."""

    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[str] | None = None
