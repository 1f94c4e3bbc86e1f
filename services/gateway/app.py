"""The gateway's HTTP API (FastAPI): ``/v1/rewards``, ``/v1/select`` and OpenRLHF's
remote reward protocol at ``/openrlhf``.

Every endpoint takes an API token (``Authorization: Bearer TOKEN``, or ``?token=``
for clients that cannot set headers, such as OpenRLHF's ``--remote_rm_url``), refuses
bodies over ``max_body_bytes`` (413), more than ``max_items`` responses or a response
over ``max_response_chars`` (422), and answers 429 with ``Retry-After`` while more than
``queue_bound`` reward requests wait for an executor. A request is keyed by its
``request_id`` (or, without one, by its body): a retry of a finished request returns
the stored answer without executing anything, and a retry of an unfinished one runs
only the pairs not stored yet.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.gateway import store
from services.gateway.banks import BankPending
from services.gateway.rpc import PairsClient
from services.gateway.schemas import (
    AnyProblem,
    InlineProblem,
    OpenRLHFRequest,
    ProblemRef,
    RewardsRequest,
    SelectRequest,
    problem_from_label,
)
from services.gateway.scoring import Item, Scored, Scorer
from shared.core.rewards import REWARD_NAMES
from shared.errors import RequestError
from shared.settings import GatewaySettings


def request_key(kind: str, token: int, request_id: str | None, body: bytes) -> str:
    """The stored key of a request: its kind, token and id (or body, without one)."""
    basis = f"id:{request_id}".encode() if request_id else b"body:" + body
    return f"{kind}:{token}:{hashlib.sha256(basis).hexdigest()}"


def check_sizes(settings: GatewaySettings, responses: Sequence[str]) -> None:
    """422 beyond ``max_items`` responses or a response over ``max_response_chars``."""
    if len(responses) > settings.max_items:
        raise HTTPException(422, f"at most {settings.max_items} responses a request")
    longest = max((len(r) for r in responses), default=0)
    if longest > settings.max_response_chars:
        raise HTTPException(
            422, f"a response of {longest} characters; at most {settings.max_response_chars}"
        )


def openrlhf_items(body: OpenRLHFRequest) -> list[tuple[AnyProblem, str, str]]:
    """OpenRLHF's queries as (problem, response, group): the response is the query
    after its prompt (the whole query when it does not start with it), the problem is
    the label's, and the responses to one prompt form a group. ``ValueError`` on
    missing or bad labels."""
    labels, prompts = body.labels, body.prompts
    if labels is None or len(labels) != len(body.query):
        raise ValueError("labels must name the problem of every query")
    if prompts is not None and len(prompts) != len(body.query):
        raise ValueError("one prompt a query")
    items = []
    for n, (query, label) in enumerate(zip(body.query, labels, strict=True)):
        prompt = prompts[n] if prompts is not None else ""
        try:
            problem = problem_from_label(label)
        except ValueError as exc:
            raise ValueError(f"label {n}: {exc}") from None
        response = query[len(prompt) :] if prompt and query.startswith(prompt) else query
        items.append((problem, response, prompt or label))
    return items


@dataclass
class Gateway:
    """What the endpoints share: authentication and the one way a request is answered."""

    settings: GatewaySettings
    sessions: async_sessionmaker[AsyncSession]
    pairs: PairsClient
    scorer: Scorer

    async def authenticate(self, authorization: str | None, token: str | None) -> int:
        """The caller's token id; 401 without a live token."""
        secret = token
        if authorization and authorization.lower().startswith("bearer "):
            secret = authorization[7:].strip()
        if not secret or len(secret) > 200:
            raise HTTPException(401, "an API token is needed", {"WWW-Authenticate": "Bearer"})
        async with self.sessions.begin() as session:
            found = await store.token_id(session, secret)
        if found is None:
            raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
        return found

    async def refs(self, problems: Sequence[AnyProblem]) -> list[ProblemRef]:
        """The stored name of each problem, storing those given inline."""
        inline = [p for p in problems if isinstance(p, InlineProblem)]
        if inline:
            async with self.sessions.begin() as session:
                await store.store_inline(session, inline)
        return [p.ref() if isinstance(p, InlineProblem) else p for p in problems]

    async def answer(
        self,
        kind: str,
        key: str,
        token: int,
        items: list[Item],
        meta: dict[str, Any],
        build: Callable[[list[Scored]], dict[str, Any]],
    ) -> dict[str, Any]:
        """The stored answer of a finished request with this key; else 429 past the
        queue bound, or score the items, store and return ``build``'s answer."""
        async with self.sessions() as session:
            stored = await store.stored_answer(session, key)
        if stored is not None:
            return stored
        if await self.pairs.waiting() > self.settings.queue_bound:
            raise HTTPException(
                429,
                "reward requests are queued past the bound",
                {"Retry-After": str(self.settings.retry_after_s)},
            )
        started = time.perf_counter()
        async with self.sessions.begin() as session:
            await store.open_request(session, key, token, kind, len(items), meta)
        try:
            scored = await self.scorer.score(items)
        except RequestError as exc:
            raise HTTPException(422, str(exc)) from None
        except BankPending as exc:
            raise HTTPException(
                503, f"{exc}; retry", {"Retry-After": str(self.settings.retry_after_s)}
            ) from None
        except TimeoutError:
            raise HTTPException(504, "the executors did not answer in time; retry") from None
        result = build(scored)
        rows = [s.row(i) for i, s in enumerate(scored)]
        async with self.sessions.begin() as session:
            await store.finish_request(session, key, result, rows, time.perf_counter() - started)
        return result


def caller(request: Request) -> int:
    """The token id the guard middleware authenticated."""
    token_id: int = request.state.token_id
    return token_id


Caller = Annotated[int, Depends(caller)]


def create_app(gateway: Gateway) -> FastAPI:
    """The API over ``gateway``."""
    app = FastAPI(title="coderm rewards", docs_url=None, redoc_url=None)
    settings = gateway.settings

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Before anything is parsed: the caller's token (401), then the body's size
        (413)."""
        try:
            request.state.token_id = await gateway.authenticate(
                request.headers.get("authorization"), request.query_params.get("token")
            )
        except HTTPException as exc:
            return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
        declared = request.headers.get("content-length", "")
        too_large = declared.isdigit() and int(declared) > settings.max_body_bytes
        if not too_large and request.method == "POST":
            too_large = len(await request.body()) > settings.max_body_bytes
        if too_large:
            return JSONResponse({"detail": "request body too large"}, status_code=413)
        return await call_next(request)

    @app.post("/v1/rewards")
    async def rewards(body: RewardsRequest, request: Request, token: Caller) -> dict[str, Any]:
        """Rewards of responses; ``group`` ties the responses to one prompt (GRPO)."""
        check_sizes(settings, [i.response for i in body.items])
        refs = await gateway.refs([i.problem for i in body.items])
        items = [
            Item(ref, i.response, i.group if i.group is not None else f"#{n}")
            for n, (ref, i) in enumerate(zip(refs, body.items, strict=True))
        ]
        key = request_key("rewards", token, body.request_id, await request.body())
        meta = {**body.meta, **({"request_id": body.request_id} if body.request_id else {})}
        return await gateway.answer(
            "rewards",
            key,
            token,
            items,
            meta,
            lambda scored: {"results": [s.as_dict() for s in scored]},
        )

    @app.post("/v1/select")
    async def select(body: SelectRequest, request: Request, token: Caller) -> dict[str, Any]:
        """Best-of-N: the index of the response the strategy picks (the first of the
        best), and every response's score."""
        check_sizes(settings, body.responses)
        (ref,) = await gateway.refs([body.problem])
        items = [Item(ref, r, "select") for r in body.responses]
        key = request_key("select", token, body.request_id, await request.body())

        def build(scored: list[Scored]) -> dict[str, Any]:
            scores = [float(getattr(s.reward, body.strategy)) for s in scored]
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))
            return {
                "best": best,
                "strategy": body.strategy,
                "scores": scores,
                "results": [s.as_dict() for s in scored],
            }

        return await gateway.answer("select", key, token, items, {"strategy": body.strategy}, build)

    @app.post("/openrlhf")
    async def openrlhf(
        body: OpenRLHFRequest,
        request: Request,
        token: Caller,
        reward: Annotated[str, Query()] = "pass_fraction",
    ) -> dict[str, Any]:
        """OpenRLHF's remote reward: ``{query, prompts, labels}`` in, ``{rewards}`` out,
        each label naming the problem (``BENCHMARK:TASK_ID``); the responses to one
        prompt form a group; ``?reward=`` picks the reward (pass_fraction by default)."""
        if reward not in REWARD_NAMES:
            raise HTTPException(422, f"reward must be one of {', '.join(REWARD_NAMES)}")
        try:
            given = openrlhf_items(body)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        check_sizes(settings, [response for _, response, _ in given])
        refs = await gateway.refs([problem for problem, _, _ in given])
        items = [Item(ref, r, g) for ref, (_, r, g) in zip(refs, given, strict=True)]
        key = request_key(f"openrlhf-{reward}", token, None, await request.body())

        def build(scored: list[Scored]) -> dict[str, Any]:
            return {
                "rewards": [float(getattr(s.reward, reward)) for s in scored],
                "tests_passed": [s.reward.tests_passed for s in scored],
                "tests_run": [s.reward.tests_run for s in scored],
                "extraction": [s.extraction for s in scored],
            }

        return await gateway.answer("openrlhf", key, token, items, {"reward": reward}, build)

    return app
