"""The OpenAI-compatible client (services/generator/openai_engine.py): the pure retry
policy and response handling, and the HTTP client against a small scripted HTTP server
that answers 429, 5xx, 400 or drops the connection on demand. (The end-to-end tests
run against a real vLLM server: tests/integration/test_openai_backend.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from services.generator.engine import (
    EngineError,
    Generated,
    PromptRequest,
    Sampling,
)
from services.generator.openai_engine import (
    EngineUnavailableError,
    OpenAIEngine,
    RetryPolicy,
    error_message,
    is_retryable,
    parse_samples,
    request_body,
    retry_after_seconds,
)
from shared.core.prompts import ChatMessage
from shared.enums import CompletionFormat
from shared.settings import OpenAISettings

# ------------------------------------------------------------------ the pure parts

POLICY = RetryPolicy(initial_s=1.0, max_s=8.0, deadline_s=100.0)


@pytest.mark.parametrize(
    ("retry", "u", "retry_after", "elapsed", "expected"),
    [
        (0, 1.0, None, 0.0, 1.0),
        (0, 0.0, None, 0.0, 0.5),
        (1, 1.0, None, 0.0, 2.0),
        (2, 0.5, None, 0.0, 3.0),
        (3, 1.0, None, 0.0, 8.0),
        (10, 1.0, None, 0.0, 8.0),
        (10, 0.0, None, 0.0, 4.0),
        (0, 1.0, 20.0, 0.0, 20.0),
        (3, 1.0, 2.0, 0.0, 8.0),
        (3, 1.0, None, 92.0, 8.0),
        (3, 1.0, None, 92.5, None),
        (0, 1.0, 200.0, 0.0, None),
    ],
)
def test_backoff_delay(
    retry: int, u: float, retry_after: float | None, elapsed: float, expected: float | None
) -> None:
    """Exponential from 1 s, capped at 8 s, jittered down to half; Retry-After wins when
    longer; no wait may end past the deadline."""
    assert POLICY.delay(retry, elapsed, retry_after, u) == expected


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *((status, False) for status in (200, 400, 401, 404, 422)),
        *((status, True) for status in (408, 409, 429, 500, 502, 503, 504)),
    ],
)
def test_is_retryable(status: int, retryable: bool) -> None:
    assert is_retryable(status) is retryable


def test_retry_after_seconds() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("-2") == 0.0
    assert retry_after_seconds("Thu, 26 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 26 Nov 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error": {"message": "too long", "type": "BadRequestError"}}', "too long"),
        ('{"object": "error", "message": "bad n", "code": 400}', "bad n"),
        ('{"detail": "Not Found"}', "Not Found"),
        ('{"error": "nope"}', "nope"),
        ("plain words\n", "plain words"),
    ],
)
def test_error_message(body: str, message: str) -> None:
    assert error_message(body) == message


CHAT = PromptRequest(
    CompletionFormat.CHAT,
    Sampling(temperature=0.8, top_p=0.95, max_tokens=64, n=3, seed=7),
    messages=(ChatMessage("user", "hi"),),
)
TEXT = PromptRequest(
    CompletionFormat.COMPLETION,
    Sampling(temperature=0.2, top_p=1.0, max_tokens=16, n=1, stop=("\ndef",)),
    text="def f():\n",
)


def test_request_body_chat() -> None:
    path, body = request_body("tiny", CHAT, {"return_token_ids": True})
    assert path == "chat/completions"
    assert body == {
        "model": "tiny",
        "n": 3,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 64,
        "seed": 7,
        "messages": [{"role": "user", "content": "hi"}],
        "return_token_ids": True,
    }


def test_request_body_completion() -> None:
    path, body = request_body("tiny", TEXT, {})
    assert path == "completions"
    assert body == {
        "model": "tiny",
        "n": 1,
        "temperature": 0.2,
        "top_p": 1.0,
        "max_tokens": 16,
        "stop": ["\ndef"],
        "prompt": "def f():\n",
    }


def test_request_body_sends_at_most_four_stop_strings() -> None:
    request = PromptRequest(
        CompletionFormat.COMPLETION, Sampling(stop=("a", "b", "c", "d", "e")), text="x"
    )
    assert request_body("tiny", request, {})[1]["stop"] == ["a", "b", "c", "d"]


def test_parse_samples_orders_choices_and_counts_tokens() -> None:
    payload = {
        "choices": [
            {"index": 1, "message": {"content": "b"}, "finish_reason": "length", "token_ids": [1]},
            {"index": 0, "message": {"content": "a"}, "finish_reason": "stop", "token_ids": [1, 2]},
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }
    assert parse_samples(payload, 2, 9.0) == [
        Generated("a", 5, 2, "stop", 9.0),
        Generated("b", 5, 1, "length", 9.0),
    ]


def test_parse_samples_token_counts_from_usage() -> None:
    one = {
        "choices": [{"index": 0, "text": "x", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6},
    }
    assert parse_samples(one, 1, 1.0) == [Generated("x", 4, 6, "stop", 1.0)]
    two = {
        "choices": [{"index": i, "text": "x", "finish_reason": "stop"} for i in range(2)],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6},
    }
    assert [g.completion_tokens for g in parse_samples(two, 2, 1.0)] == [None, None]


def test_parse_samples_refuses_a_short_answer() -> None:
    with pytest.raises(EngineError, match="1 choices for n=2"):
        parse_samples({"choices": [{"index": 0, "text": "x"}]}, 2, 1.0)


# ------------------------------------------- the HTTP client against a scripted server


@dataclass
class Reply:
    """One scripted answer: an HTTP status and JSON body, or ``drop`` the connection."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class Script:
    """Replies in order (the last one repeats) and what the server received."""

    replies: list[Reply]
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0
    two_in_flight: asyncio.Event = field(default_factory=asyncio.Event)

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def completion(n: int, text: str = "x") -> dict[str, Any]:
    return {
        "choices": [
            {
                "index": i,
                "text": f"{text}{i}",
                "finish_reason": "length",
                "token_ids": [0] * (i + 1),
            }
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": n * (n + 1) // 2},
    }


async def _serve_one(
    script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
    script.received.append((request_line.split()[1], headers, body))
    reply = script.next_reply()
    script.in_flight += 1
    script.most_in_flight = max(script.most_in_flight, script.in_flight)
    if script.in_flight >= 2:
        script.two_in_flight.set()
    try:
        if script.gate is not None:
            await script.gate.wait()
    finally:
        script.in_flight -= 1
    if reply.drop:
        writer.close()
        return
    payload = json.dumps(reply.body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
    writer.write(
        f"HTTP/1.1 {reply.status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n{extra}connection: close\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[str]:
    """An HTTP/1.1 server on a free local port answering from ``script``; yields its /v1 URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await _serve_one(script, reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        await server.wait_closed()


FAST = OpenAISettings(backoff_initial_s=0.01, backoff_max_s=0.05, retry_deadline_s=30.0)


@contextlib.asynccontextmanager
async def engine_for(
    url: str, settings: OpenAISettings = FAST, **kwargs: Any
) -> AsyncIterator[OpenAIEngine]:
    engine = OpenAIEngine(url, "tiny", settings, **kwargs)
    try:
        yield engine
    finally:
        await engine.aclose()


async def test_retries_429_5xx_and_dropped_connections_then_succeeds() -> None:
    """Transient failures are retried with the same body until the server answers."""
    script = Script(
        [
            Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0"}),
            Reply(500, {"message": "boom"}),
            Reply(drop=True),
            Reply(503, "unavailable"),
            Reply(200, completion(3)),
        ]
    )
    async with scripted_server(script) as url, engine_for(url, api_key="sk-test") as engine:
        samples = await engine.generate(CHAT)
    assert [s.text for s in samples] == ["x0", "x1", "x2"]
    assert [s.completion_tokens for s in samples] == [1, 2, 3]
    assert len(script.received) == 5
    paths = {path for path, _, _ in script.received}
    bodies = [body for _, _, body in script.received]
    assert paths == {"/v1/chat/completions"}
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["n"] == 3 and bodies[0]["seed"] == 7
    assert script.received[0][1]["authorization"] == "Bearer sk-test"


async def test_400_is_a_clear_error_without_retry() -> None:
    message = "This model's maximum context length is 512 tokens."
    script = Script([Reply(400, {"object": "error", "message": message, "code": 400})])
    async with scripted_server(script) as url, engine_for(url) as engine:
        with pytest.raises(EngineError, match=r"HTTP 400 .*maximum context length is 512"):
            await engine.generate(TEXT)
    assert len(script.received) == 1
    assert script.received[0][0] == "/v1/completions"
    assert "authorization" not in script.received[0][1]


async def test_gives_up_at_the_deadline_when_nothing_listens() -> None:
    async with scripted_server(Script([Reply()])) as url:
        pass  # the port is closed again: every connection is refused
    settings = OpenAISettings(backoff_initial_s=0.01, backoff_max_s=0.02, retry_deadline_s=0.3)
    async with engine_for(url, settings) as engine:
        with pytest.raises(EngineUnavailableError, match="ConnectError"):
            await engine.generate(TEXT)


async def test_bounded_concurrency() -> None:
    """With ``max_concurrency`` 2, five concurrent requests reach the server two at a time."""
    gate = asyncio.Event()
    script = Script([Reply(200, completion(1))], gate=gate)
    settings = OpenAISettings(max_concurrency=2)
    async with scripted_server(script) as url, engine_for(url, settings) as engine:
        calls = [asyncio.create_task(engine.generate(TEXT)) for _ in range(5)]
        async with asyncio.timeout(10):
            await script.two_in_flight.wait()
        for _ in range(20):
            await asyncio.sleep(0)
        in_flight_while_held = script.in_flight
        gate.set()
        results = await asyncio.gather(*calls)
    assert in_flight_while_held == 2
    assert script.most_in_flight == 2
    assert len(script.received) == 5
    assert all(len(r) == 1 for r in results)
