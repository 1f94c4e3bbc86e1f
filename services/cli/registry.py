"""The model registry: validated model entries, checkpoints registered by content."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cli import checkpoints
from services.cli.errors import UserError
from shared.core.model_spec import ModelSpec
from shared.db.models import Completion, Model, Run, RunCompletion
from shared.enums import BackendName, ModelRole


class RegistryError(UserError):
    """A registry request that cannot be done as asked (shown to the user as one line)."""


def spec_of(model: Model) -> ModelSpec:
    """The spec a registered row was made from."""
    return ModelSpec.of_row(model)


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
