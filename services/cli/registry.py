"""The model registry: validated model entries, checkpoints registered by content."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cli import checkpoints
from services.cli.errors import UserError
from shared.db.models import Completion, Model, Run, RunCompletion
from shared.enums import BackendName, CompletionFormat, ModelRole


class RegistryError(UserError):
    """A registry request that cannot be done as asked (shown to the user as one line)."""


class ModelSpec(BaseModel):
    """A model entry as the user gives it; checked per backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    backend: BackendName
    role: ModelRole = ModelRole.BOTH
    format: CompletionFormat = CompletionFormat.CHAT
    checkpoint: str | None = None
    fingerprint: str | None = None
    endpoint: str | None = None
    served_name: str | None = None
    api_key_ref: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = Field(default=None, ge=16)
    temperature: float = Field(default=0.8, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=2048, ge=1)
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _backend_needs(self) -> ModelSpec:
        if self.backend is BackendName.VLLM and not self.checkpoint:
            raise ValueError("a vllm model needs --checkpoint (a local model folder)")
        if self.backend is BackendName.OPENAI:
            url = urlparse(self.endpoint or "")
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError("an openai model needs --endpoint http(s)://host:port/v1")
            if not self.served_name:
                raise ValueError("an openai model needs --served-name (the API's model name)")
        return self

    def row_values(self) -> dict[str, Any]:
        """The column values of the ``models`` row."""
        return self.model_dump(mode="json")


def spec_of(model: Model) -> ModelSpec:
    """The spec a registered row was made from."""
    return ModelSpec.model_validate({name: getattr(model, name) for name in ModelSpec.model_fields})


async def add_model(session: AsyncSession, spec: ModelSpec) -> tuple[Model, bool]:
    """Register ``spec``; return (row, created). Registering the same spec again is a
    no-op; a different spec under a registered name is refused."""
    existing = await session.scalar(select(Model).where(Model.name == spec.name))
    if existing is not None:
        if spec_of(existing) != spec:
            raise RegistryError(
                f"model {spec.name!r} is registered with other settings "
                "(coderm model show; remove it first to change it)"
            )
        return existing, False
    model = Model(**spec.row_values())
    session.add(model)
    await session.flush()
    return model, True


async def get_model(session: AsyncSession, name: str) -> Model:
    """A registered model by name."""
    model = await session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise RegistryError(f"model {name!r} is not registered (coderm model list)")
    return model


async def list_models(session: AsyncSession) -> list[tuple[Model, int, int]]:
    """Every model with how many runs use it and how many completions it has."""
    runs = (
        select(func.count())
        .select_from(Run)
        .where(or_(Run.policy_model_id == Model.id, Run.test_model_id == Model.id))
        .scalar_subquery()
    )
    completions = (
        select(func.count())
        .select_from(Completion)
        .where(Completion.model_id == Model.id)
        .scalar_subquery()
    )
    rows = await session.execute(select(Model, runs, completions).order_by(Model.name))
    return [(model, int(r), int(c)) for model, r, c in rows.tuples()]


async def remove_model(session: AsyncSession, name: str) -> int:
    """Delete a model no run uses, with its completions; return how many completions went."""
    model = await get_model(session, name)
    used = await session.scalar(
        select(func.count())
        .select_from(Run)
        .where(or_(Run.policy_model_id == model.id, Run.test_model_id == model.id))
    )
    if used:
        raise RegistryError(f"model {name!r} is used by {used} run(s); it is kept")
    linked = await session.scalar(
        select(func.count())
        .select_from(RunCompletion)
        .join(Completion, Completion.id == RunCompletion.completion_id)
        .where(Completion.model_id == model.id)
    )
    assert not linked
    result = await session.execute(
        delete(Completion).where(Completion.model_id == model.id).returning(Completion.id)
    )
    removed = len(result.all())
    await session.delete(model)
    return removed


async def register_checkpoint(
    session: AsyncSession, checkpoint: checkpoints.Checkpoint, role: ModelRole = ModelRole.POLICY
) -> tuple[Model, bool]:
    """The vLLM model of a checkpoint folder, registered on first sight.

    A checkpoint is known by its content fingerprint, so a moved or re-copied folder
    is the same model. A new one is named after its folder (plus the start of its
    fingerprint when that name is taken); its prompt format follows its tokenizer
    (chat template or not).
    """
    known = await session.scalar(
        select(Model)
        .where(Model.fingerprint == checkpoint.fingerprint, Model.backend == BackendName.VLLM.value)
        .order_by(Model.id)
        .limit(1)
    )
    if known is not None:
        return known, False
    name = checkpoint.path.name
    if await session.scalar(select(Model.id).where(Model.name == name)) is not None:
        name = f"{name}-{checkpoint.fingerprint[:8]}"
    spec = ModelSpec(
        name=name,
        backend=BackendName.VLLM,
        role=role,
        format=checkpoint.format,
        checkpoint=str(checkpoint.path),
        fingerprint=checkpoint.fingerprint,
    )
    return await add_model(session, spec)
