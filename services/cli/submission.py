"""Submitting a run: register its policy checkpoint if it is one, create the run, and
publish its generate requests."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.cli import checkpoints, registry
from services.cli.errors import UserError
from shared.broker import connect_broker
from shared.core.run_request import RUN_DEFAULTS, RunSettings
from shared.db.session import make_engine, make_sessionmaker
from shared.runs.creation import RunRequest, create_run, run_start_requests
from shared.settings import ServiceSettings


@dataclasses.dataclass(frozen=True)
class Submitted:
    """A submitted run, and the model its policy resolved to."""

    run_id: uuid.UUID
    policy: str
    registered: bool


def run_request(
    *,
    benchmark: str,
    policy: str,
    test_model: str,
    name: str = "",
    settings: RunSettings = RUN_DEFAULTS,
) -> RunRequest:
    """The request of a run of ``policy`` against ``test_model`` on ``benchmark``,
    sampled, executed and labelled by ``settings`` (by default :data:`RUN_DEFAULTS`)."""
    return RunRequest(
        benchmark=benchmark,
        policy=policy,
        test_model=test_model,
        name=name,
        **dataclasses.asdict(settings),
    )


def policy_checkpoint(policy: str) -> checkpoints.Checkpoint | None:
    """The checkpoint folder ``--policy`` names, if it names one (else it is a model name)."""
    path = Path(policy).expanduser()
    return checkpoints.inspect(path) if checkpoints.is_checkpoint(path) else None


async def submit_run(
    request: RunRequest,
    checkpoint: checkpoints.Checkpoint | None = None,
    config: Mapping[str, Any] | None = None,
) -> Submitted:
    """Create the run (its policy model the registered ``checkpoint``, when given) with
    ``config`` merged into its config, then publish the requests that start it."""
    settings = ServiceSettings()
    engine = make_engine(settings.database)
    registered = False
    try:
        async with make_sessionmaker(engine).begin() as session:
            if checkpoint is not None:
                model, registered = await registry.register_checkpoint(session, checkpoint)
                request = dataclasses.replace(request, policy=model.name)
            run_row, problem_ids = await create_run(session, request)
            if config:
                run_row.config = {**run_row.config, **config}
        messages = run_start_requests(run_row, problem_ids)
        async with connect_broker(settings.broker) as broker:
            await broker.publish_many(messages)
        return Submitted(run_row.id, request.policy, registered)
    finally:
        await engine.dispose()


def predicted_lambdas(path: Path, policy: str) -> dict[str, float]:
    """The predicted pass rates of ``coderm difficulty predict --out`` (task id ->
    lambda), checked to be for ``policy`` (a registered name; a checkpoint folder is
    taken as it is)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        predictions = {str(k): float(v) for k, v in data["predictions"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a `coderm difficulty predict --out` file ({exc})") from None
    named = data.get("policy")
    if policy_checkpoint(policy) is None and named not in (None, policy):
        raise UserError(f"{path} predicts for policy {named!r}, not {policy!r}")
    return predictions
