"""``coderm watch DIR``: evaluate every new checkpoint that appears in a folder.

Each checkpoint folder (``config.json`` and weights, untouched for ``--settle``
seconds so that a half-written one is left alone) is registered as a vllm model by its
content fingerprint and gets one run with the watch's settings; when the run finishes
it is compared with the run of the checkpoint before it (natural name order). What has
been evaluated lives in the database: each run records the watched folder and a
signature of the settings (``runs.config["watch"]``), and whether its comparison was
reported, so a restarted watch carries on where it stopped.

With ``--suite NAME`` each checkpoint gets one run per member of a stored suite
instead, with verdicts against the previous checkpoint and the best so far
(:mod:`services.cli.suite_watch`, docs/CONTINUOUS.md); the folder scan and the waiting
are this module's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import checkpoints, registry, store, submission
from services.cli.shell import console
from shared.db.models import Run
from shared.db.session import make_engine, make_sessionmaker
from shared.enums import RunState
from shared.runs.creation import RunRequest
from shared.settings import ServiceSettings

#: Show a run's results / how a run (A, the candidate) compares with the previous
#: checkpoint's (B, the baseline). Called outside the watch's event loop (they may run
#: their own).
Report = Callable[[uuid.UUID], None]
Compare = Callable[[uuid.UUID, uuid.UUID], None]
DONE = (RunState.FINISHED.value, RunState.FAILED.value)


@dataclasses.dataclass(frozen=True)
class Watch:
    """What to watch and how to evaluate each checkpoint."""

    folder: Path
    template: RunRequest
    settle_s: float = 60.0
    interval_s: float = 60.0
    timeout_s: float = 7200.0

    def signature(self) -> str:
        """A digest of everything that makes two watch runs comparable."""
        settings = dataclasses.asdict(self.template) | {"policy": None, "name": None}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def settled(folder: Path, settle_s: float, now: float) -> list[Path]:
    """Checkpoint folders in natural order whose files are older than ``settle_s``."""
    return [
        p
        for p in checkpoints.checkpoints_in(folder)
        if now - checkpoints.newest_mtime(p) >= settle_s
    ]


async def _watch_run(
    session: AsyncSession, watch: Watch, checkpoint: checkpoints.Checkpoint
) -> tuple[str, Run | None]:
    """The checkpoint's model name and its run with these settings, if there is one."""
    model, _ = await registry.register_checkpoint(session, checkpoint)
    run = await session.scalar(
        select(Run)
        .where(
            Run.policy_model_id == model.id,
            Run.config["watch"]["signature"].astext == watch.signature(),
        )
        .order_by(Run.created_at.desc())
        .limit(1)
    )
    return model.name, run


async def wait_run(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, timeout_s: float
) -> store.Progress:
    """Follow a run (a line each time its state or scored count changes) until it
    finishes, fails, reports an error, or ``timeout_s`` passes; its last progress."""
    deadline = time.monotonic() + timeout_s
    shown = ""
    while True:
        async with sessions() as session:
            progress = await store.run_progress(session, run_id)
        line = (
            f"run {str(run_id)[:8]}: {progress.state}, scored "
            f"{progress.scored[0]}/{progress.scored[1]}"
        )
        if line != shown:
            console.print(line)
            shown = line
        if progress.state in DONE or progress.error or time.monotonic() > deadline:
            return progress
        await asyncio.sleep(2.0)


@dataclasses.dataclass(frozen=True)
class Show:
    """How the watch shows its results."""

    report: Report
    compare: Compare


async def _show(callback: Callable[..., None], *run_ids: uuid.UUID) -> None:
    """Run a display callback in a thread; a failure to display stops nothing."""
    try:
        await asyncio.to_thread(callback, *run_ids)
    except Exception as error:
        console.print(f"[yellow]could not show the results: {error!r}[/yellow]")


async def _mark_reported(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> None:
    async with sessions.begin() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        run.config = {**run.config, "watch": {**run.config["watch"], "reported": True}}


async def watch_once(sessions: async_sessionmaker[AsyncSession], watch: Watch, show: Show) -> bool:
    """One pass over the folder: evaluate and report every checkpoint not yet reported.
    Return whether every run finished."""
    ok = True
    previous: uuid.UUID | None = None
    for path in await asyncio.to_thread(settled, watch.folder, watch.settle_s, time.time()):
        checkpoint = await asyncio.to_thread(checkpoints.inspect, path)
        async with sessions.begin() as session:
            name, run = await _watch_run(session, watch, checkpoint)
        if run is None:
            config: dict[str, Any] = {
                "watch": {"folder": str(watch.folder), "signature": watch.signature()}
            }
            request = dataclasses.replace(watch.template, policy=name, name=f"watch {name}")
            submitted = await submission.submit_run(request, checkpoint, config)
            console.print(f"checkpoint {path.name}: model {name}, run {submitted.run_id}")
            run_id = submitted.run_id
        elif run.config["watch"].get("reported"):
            previous = run.id if run.state == RunState.FINISHED.value else previous
            continue
        else:
            run_id = run.id
        progress = await wait_run(sessions, run_id, watch.timeout_s)
        if progress.state != RunState.FINISHED.value:
            console.print(
                f"[red]run {run_id} of {path.name}: {progress.state}[/red] {progress.error or ''}"
            )
            ok = False
            continue
        if previous is None:
            await _show(show.report, run_id)
        else:
            console.print(f"checkpoint {path.name} (A) against the one before it (B):")
            await _show(show.compare, run_id, previous)
        await _mark_reported(sessions, run_id)
        previous = run_id
    return ok


async def watch_folder(watch: Watch, once: bool, show: Show) -> bool:
    """Watch until interrupted (or one pass with ``once``); whether every run finished."""
    engine = make_engine(ServiceSettings().database)
    try:
        sessions = make_sessionmaker(engine)
        while True:
            ok = await watch_once(sessions, watch, show)
            if once:
                return ok
            await asyncio.sleep(watch.interval_s)
    finally:
        await engine.dispose()
