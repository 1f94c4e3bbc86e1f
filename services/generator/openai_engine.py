"""An :class:`Engine` on an OpenAI-compatible HTTP API (a ``vllm serve`` deployment or
any other server): ``/chat/completions`` and ``/completions`` with ``n`` and ``seed``.

Built on ``httpx`` rather than the ``openai`` package: the client needs exact control
of what is retried (429, 5xx, connection errors and timeouts, with back-off up to a
deadline) and what is not (any other 4xx, reported with the server's message), of the
request body (server-specific fields such as vLLM's ``return_token_ids``), and of
per-sample token counts, which the SDK's typed responses would hide.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from services.generator.engine import EngineError, Generated, PromptRequest
from shared.settings import OpenAISettings

log = structlog.get_logger(__name__)


#: The OpenAI API takes at most 4 stop strings (vLLM's server enforces it). Our stop
#: strings only save tokens (the extractor cuts at all of them), so the rest are dropped.
MAX_STOP = 4


class EngineUnavailableError(Exception):
    """The endpoint kept failing transiently until the retry deadline; worth retrying later."""


class _TransientError(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, why: str, retry_after_s: float | None = None) -> None:
        super().__init__(why)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter, bounded by a deadline.

    The n-th retry (n = 0, 1, ...) waits ``min(max_s, initial_s * 2**n) * u`` with
    ``u`` uniform in [0.5, 1], or the server's ``Retry-After`` if that is longer; no
    retry starts a wait that would end past ``deadline_s`` after the first attempt.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    deadline_s: float = 900.0

    def delay(
        self, retry: int, elapsed_s: float, retry_after_s: float | None, u: float
    ) -> float | None:
        """Seconds to wait before retry number ``retry``, or ``None`` to give up."""
        ceiling = min(self.max_s, self.initial_s * 2.0**retry)
        wait = max(ceiling * (0.5 + 0.5 * u), retry_after_s or 0.0)
        if elapsed_s + wait > self.deadline_s:
            return None
        return wait


def is_retryable(status: int) -> bool:
    """Whether an HTTP status is worth retrying: timeouts, conflicts, rate limits, 5xx."""
    return status in (408, 409, 425, 429) or status >= 500


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (it is either seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_message(body: str) -> str:
    """The server's own words from an error body (OpenAI, vLLM and FastAPI shapes)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.strip()[:1000]
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:1000]
        for key in ("message", "detail", "error"):
            if payload.get(key):
                return str(payload[key])[:1000]
    return body.strip()[:1000]


def request_body(
    served_name: str, request: PromptRequest, extra_body: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The endpoint path and JSON body of one request."""
    sampling = request.sampling
    body: dict[str, Any] = {
        "model": served_name,
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop[:MAX_STOP])
    if request.format.is_chat:
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        path = "chat/completions"
    else:
        body["prompt"] = request.text
        path = "completions"
    return path, {**body, **extra_body}


def _tokens(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def parse_samples(payload: Any, n: int, latency_ms: float) -> list[Generated]:
    """The ``n`` samples of a (chat) completion response, in choice order.

    Token counts: a choice's own ``token_ids`` when the server returns them (vLLM with
    ``return_token_ids``), else the response's ``usage`` when it covers one sample;
    with several samples and only a total, a sample's count is unknown (``None``).
    """
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise EngineError(f"the server answered {got} choices for n={n}")
    usage = payload.get("usage") or {}
    prompt_tokens = _tokens(usage.get("prompt_tokens"))
    samples = []
    for choice in sorted(choices, key=lambda c: int(c.get("index", 0))):
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        token_ids = choice.get("token_ids")
        if isinstance(token_ids, list):
            completion_tokens: int | None = len(token_ids)
        else:
            completion_tokens = _tokens(usage.get("completion_tokens")) if n == 1 else None
        samples.append(
            Generated(
                text=str(text or ""),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=choice.get("finish_reason"),
                latency_ms=latency_ms,
            )
        )
    return samples


class OpenAIEngine:
    """Serves requests of one model through an OpenAI-compatible endpoint.

    At most ``max_concurrency`` requests are on the wire at once (waiting out a
    back-off does not hold a slot).
    """

    def __init__(
        self,
        endpoint: str,
        served_name: str,
        settings: OpenAISettings,
        api_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.endpoint = endpoint.rstrip("/") + "/"
        self.served_name = served_name
        self.extra_body = dict(extra_body or {})
        self.policy = RetryPolicy(
            settings.backoff_initial_s, settings.backoff_max_s, settings.retry_deadline_s
        )
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._client = httpx.AsyncClient(
            base_url=self.endpoint,
            headers=headers,
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.max_concurrency),
        )

    async def generate(self, request: PromptRequest) -> list[Generated]:
        """Return ``request.sampling.n`` samples; retry transient failures up to the
        deadline, raise :class:`EngineError` at once for a request the server refuses."""
        path, body = request_body(self.served_name, request, self.extra_body)
        started = time.monotonic()
        retry = 0
        while True:
            attempt_started = time.monotonic()
            try:
                payload = await self._post(path, body)
            except _TransientError as failure:
                elapsed = time.monotonic() - started
                wait = self.policy.delay(retry, elapsed, failure.retry_after_s, random.random())
                if wait is None:
                    raise EngineUnavailableError(
                        f"{self.endpoint}{path} still failing after {retry + 1} attempts "
                        f"in {elapsed:.0f} s: {failure}"
                    ) from None
                log.warning(
                    "openai.retry",
                    endpoint=self.endpoint,
                    request_id=request.request_id,
                    attempt=retry + 1,
                    wait_s=round(wait, 2),
                    error=str(failure),
                )
                await asyncio.sleep(wait)
                retry += 1
                continue
            latency_ms = (time.monotonic() - attempt_started) * 1000
            return parse_samples(payload, request.sampling.n, latency_ms)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        """One HTTP attempt; its JSON payload, or ``_TransientError``, or ``EngineError``."""
        async with self._slots:
            try:
                response = await self._client.post(path, json=body)
            except httpx.TransportError as error:
                raise _TransientError(f"{type(error).__name__}: {error}") from None
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise _TransientError("HTTP 200 with a body that is not JSON") from None
        message = error_message(response.text)
        if is_retryable(response.status_code):
            raise _TransientError(
                f"HTTP {response.status_code}: {message}",
                retry_after_seconds(response.headers.get("retry-after")),
            )
        raise EngineError(f"HTTP {response.status_code} from {self.endpoint}{path}: {message}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
