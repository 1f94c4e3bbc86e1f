"""The contract between the generator and a text-generation engine (vLLM, OpenAI-compatible).

A backend that *generates* (as opposed to ``replay``) owns one :class:`Engine` and turns
a run's generate request into one :class:`PromptRequest`; the engine returns ``n``
:class:`Generated` samples. Engines know nothing of the database or the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.core.prompts import ChatMessage
from shared.enums import CompletionFormat


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one request (CodeRM's defaults).

    vLLM draws sample ``i`` of a seeded request with ``seed + i`` (in process and on its
    OpenAI server alike), so requests on one prompt share samples unless their seeds
    are at least ``n`` apart.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 2048
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptRequest:
    """What to generate from: chat messages (through the model's chat template) or raw text."""

    format: CompletionFormat
    sampling: Sampling
    messages: tuple[ChatMessage, ...] = ()
    text: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class Generated:
    """One sample with what it cost."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    latency_ms: float


class EngineError(Exception):
    """A request the engine cannot serve and that retrying will not fix (e.g. HTTP 400)."""


class Engine(Protocol):
    """A loaded model that serves concurrent requests."""

    async def generate(self, request: PromptRequest) -> list[Generated]:
        """Return ``request.sampling.n`` samples, in sample order."""
        ...

    async def aclose(self) -> None:
        """Release the model (engine, connections)."""
        ...
