"""``coderm model add|list|show|remove``: the model registry on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import checkpoints, registry
from services.cli.errors import UserError
from services.cli.shell import console, user_errors, with_sessions
from shared.core.model_spec import ModelSpec
from shared.db.models import Model
from shared.enums import BackendName, CompletionFormat, ModelRole

model_app = typer.Typer(help="Register and inspect models.", no_args_is_help=True)


def parse_engine_args(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is read as JSON when it parses (``true``, ``64``),
    else kept as text."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise registry.RegistryError(f"--engine-arg wants KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed


def _config(engine_args: list[str], extra_body: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if engine_args:
        config["engine_args"] = parse_engine_args(engine_args)
    if extra_body:
        try:
            body = json.loads(extra_body)
        except ValueError as error:
            raise registry.RegistryError(f"--extra-body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise registry.RegistryError("--extra-body must be a JSON object")
        config["extra_body"] = body
    return config


def _spec(**values: Any) -> ModelSpec:
    try:
        return ModelSpec(**values)
    except ValidationError as error:
        reasons = (
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
            for e in error.errors()
        )
        raise registry.RegistryError(
            "; ".join(r.replace("Value error, ", "") for r in reasons)
        ) from None


@model_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the model's name in runs")],
    backend: Annotated[BackendName, typer.Option(help="vllm, openai or replay")],
    role: Annotated[ModelRole, typer.Option(help="policy, unit_test or both")] = ModelRole.BOTH,
    prompt_format: Annotated[
        CompletionFormat | None,
        typer.Option(
            "--format",
            help="chat (CodeRM prompts, markdown answers), chat-ref (the same, extracted by "
            "CodeRM's own scripts' rules: for --profile coderm-ref runs) or completion (CodeT "
            "prompts); default: chat, or what a local checkpoint's tokenizer supports",
        ),
    ] = None,
    checkpoint: Annotated[str | None, typer.Option(help="vllm: the model folder")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="openai: base URL, e.g. http://127.0.0.1:8000/v1")
    ] = None,
    served_name: Annotated[str | None, typer.Option(help="openai: the API's model name")] = None,
    api_key_ref: Annotated[
        str | None,
        typer.Option(help="openai: key name in CODERM_OPENAI__API_KEYS (default: API_KEY)"),
    ] = None,
    dtype: Annotated[str, typer.Option(help="vllm: weights dtype")] = "auto",
    max_model_len: Annotated[int | None, typer.Option(help="vllm: context length")] = None,
    temperature: Annotated[float, typer.Option()] = 0.8,
    top_p: Annotated[float, typer.Option()] = 0.95,
    max_tokens: Annotated[int, typer.Option(help="tokens per sample")] = 2048,
    engine_arg: Annotated[
        list[str] | None, typer.Option(help="vllm: extra engine argument KEY=VALUE (repeat)")
    ] = None,
    extra_body: Annotated[
        str | None, typer.Option(help='openai: JSON merged into each request, e.g. {"top_k": 20}')
    ] = None,
) -> None:
    """Register a model (idempotent for the same settings)."""
    with user_errors():
        if prompt_format is CompletionFormat.CODE and backend is not BackendName.REPLAY:
            raise UserError("format code is for imported CodeRM files (the replay backend)")
        local = Path(checkpoint) if checkpoint else None
        if local is not None and not checkpoints.is_checkpoint(local):
            local = None  # a path on the generator's host, or not yet written
        default_format = checkpoints.prompt_format(local) if local else CompletionFormat.CHAT
        spec = _spec(
            name=name,
            backend=backend,
            role=role,
            format=prompt_format or default_format,
            checkpoint=str(local.resolve()) if local else checkpoint,
            fingerprint=checkpoints.fingerprint(local) if local else None,
            endpoint=endpoint,
            served_name=served_name,
            api_key_ref=api_key_ref,
            dtype=dtype,
            max_model_len=max_model_len,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            config=_config(engine_arg or [], extra_body),
        )

    async def work(sessions: async_sessionmaker[AsyncSession]) -> bool:
        async with sessions.begin() as session:
            _, created = await registry.add_model(session, spec)
            return created

    created = with_sessions(work)
    console.print(f"model {name}: {'registered' if created else 'already registered'}")


@model_app.command("list")
def list_() -> None:
    """List registered models with their use."""

    async def work(
        sessions: async_sessionmaker[AsyncSession],
    ) -> list[tuple[Model, int, int]]:
        async with sessions() as session:
            return await registry.list_models(session)

    table = Table(title="models")
    for column in ("name", "backend", "role", "format", "source", "sampling", "runs"):
        table.add_column(column, overflow="fold")
    table.add_column("completions", justify="right")
    for model, runs, completions in with_sessions(work):
        table.add_row(
            model.name,
            model.backend,
            model.role,
            model.format,
            model.checkpoint or model.endpoint or "",
            f"T={model.temperature:g} p={model.top_p:g} max={model.max_tokens}",
            str(runs),
            str(completions),
        )
    console.print(table)


@model_app.command("show")
def show(name: Annotated[str, typer.Argument()]) -> None:
    """Print one model's registry entry as JSON."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
        async with sessions() as session:
            model = await registry.get_model(session, name)
            return {
                "id": model.id,
                **registry.spec_of(model).model_dump(mode="json"),
                "created_at": model.created_at.isoformat(),
            }

    console.print_json(json.dumps(with_sessions(work)))


@model_app.command("remove")
def remove(name: Annotated[str, typer.Argument()]) -> None:
    """Remove a model that no run uses, with its completions."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> int:
        async with sessions.begin() as session:
            return await registry.remove_model(session, name)

    removed = with_sessions(work)
    console.print(f"model {name} removed ({removed} completions)")
