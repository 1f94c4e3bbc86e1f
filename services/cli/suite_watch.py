"""``coderm watch DIR --suite NAME``: every new checkpoint gets one run per suite member,
is compared with the previous checkpoint and with the best so far on each, and a
regression calls a hook.

A checkpoint is handled in five steps, each stored before the next, so that a watch
killed at any point and started again continues from the database:

1. its evaluations are recorded (``checkpoint_evaluations``, one a member, state
   ``pending``), with the checkpoint's place in the suite's history (``sequence``);
2. each member's run is submitted through :mod:`services.cli.submission`, the
   evaluation's id in the run's config (``runs.config["suite"]``), then linked to the
   evaluation (``running``). A run created but not linked (killed in between) is found
   by that id, linked and its unfinished problems re-driven (idempotent messages):
   never submitted twice;
3. the runs are awaited (a timeout stops the pass: a later checkpoint is never judged
   before an earlier one);
4. per member, the run is compared (:func:`services.cli.compare.load_comparison`, the
   paired bootstrap of ``coderm compare``; A the checkpoint) with the previous
   checkpoint's run and with the best so far (the highest headline metric), the gates
   are read (:func:`services.cli.suites.find_regressions`) and everything is stored
   once (``evaluated``; an evaluation stored already is never recomputed);
5. for each evaluation with a regression the hook runs once: its call is recorded
   (``hook_state = 'called'``) before it starts, so a kill while it runs loses that
   call rather than repeating it (at most once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import checkpoints, compare, registry, store, submission
from services.cli.errors import UserError
from services.cli.shell import console
from services.cli.suites import (
    Evaluated,
    LoadedSuite,
    best_of,
    evaluations_table,
    find_regressions,
    load_suite,
    previous_of,
)
from services.cli.watch import settled, wait_run
from shared.broker import connect_broker
from shared.core.significance import DEFAULT_BOOTSTRAP, Bootstrap
from shared.db.models import CheckpointEvaluation, Model, Run, Suite
from shared.db.session import make_engine, make_sessionmaker
from shared.enums import ModelRole, Role, RunState
from shared.runs.resume import resume_messages
from shared.settings import ServiceSettings

PENDING, RUNNING, EVALUATED, FAILED = "pending", "running", "evaluated", "failed"
HOOK_UNSET, HOOK_PENDING, HOOK_CALLED = "unset", "pending", "called"


@dataclass(frozen=True)
class SuiteWatch:
    """What to watch, against which suite, and what to do on a regression.

    ``hook``: a shell command run once per evaluation with a regression (the
    evaluation as JSON on stdin); ``baseline``: a registered policy model evaluated
    before the folder's checkpoints (e.g. the model fine-tuning starts from)."""

    folder: Path
    suite: str
    settle_s: float = 60.0
    interval_s: float = 60.0
    timeout_s: float = 7200.0
    hook: str | None = None
    baseline: str | None = None
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP


@dataclass(frozen=True)
class Target:
    """A checkpoint to evaluate: a folder, or a registered model (the baseline)."""

    label: str
    checkpoint: checkpoints.Checkpoint | None = None


async def _policy(session: AsyncSession, target: Target) -> Model:
    if target.checkpoint is not None:
        return (await registry.register_checkpoint(session, target.checkpoint))[0]
    model = await registry.get_model(session, target.label)
    if not ModelRole(model.role).serves(Role.SOLUTION):
        raise UserError(f"--baseline {model.name!r} is a {model.role} model, not a policy")
    return model


async def record_evaluations(
    sessions: async_sessionmaker[AsyncSession], suite: LoadedSuite, target: Target
) -> tuple[str, list[int]]:
    """Step 1: the target's policy model (registered on first sight) and its evaluation
    ids in member order, created ``pending`` where missing. The suite row is locked so
    that a checkpoint's ``sequence`` is taken once."""
    async with sessions.begin() as session:
        await session.scalar(select(Suite).where(Suite.id == suite.row.id).with_for_update())
        model = await _policy(session, target)
        sequence = await session.scalar(
            select(func.min(CheckpointEvaluation.sequence)).where(
                CheckpointEvaluation.suite_id == suite.row.id,
                CheckpointEvaluation.policy_model_id == model.id,
            )
        )
        if sequence is None:
            last = await session.scalar(
                select(func.max(CheckpointEvaluation.sequence)).where(
                    CheckpointEvaluation.suite_id == suite.row.id
                )
            )
            sequence = 0 if last is None else last + 1
        rows = [
            {
                "suite_id": suite.row.id,
                "member_id": member.id,
                "policy_model_id": model.id,
                "checkpoint": target.label,
                "sequence": sequence,
                "state": PENDING,
                "headline": suite.row.headline,
            }
            for member, _ in suite.members
        ]
        await session.execute(insert(CheckpointEvaluation).values(rows).on_conflict_do_nothing())
        ids = {
            member_id: eid
            for eid, member_id in await session.execute(
                select(CheckpointEvaluation.id, CheckpointEvaluation.member_id).where(
                    CheckpointEvaluation.suite_id == suite.row.id,
                    CheckpointEvaluation.policy_model_id == model.id,
                )
            )
        }
        return model.name, [ids[member.id] for member, _ in suite.members]


async def _evaluations(
    sessions: async_sessionmaker[AsyncSession], ids: Sequence[int]
) -> list[CheckpointEvaluation]:
    async with sessions() as session:
        rows = {
            e.id: e
            for e in await session.scalars(
                select(CheckpointEvaluation).where(CheckpointEvaluation.id.in_(ids))
            )
        }
    return [rows[i] for i in ids]


async def _adopt_orphan(sessions: async_sessionmaker[AsyncSession], evaluation_id: int) -> bool:
    """Link a run made for this evaluation but never linked (the watch was killed in
    between) and re-drive its unfinished problems; whether there was one."""
    async with sessions.begin() as session:
        evaluation = await session.get(CheckpointEvaluation, evaluation_id, with_for_update=True)
        assert evaluation is not None
        if evaluation.run_id is not None:
            return True
        run = await session.scalar(
            select(Run)
            .where(Run.config["suite"]["evaluation"].astext == str(evaluation_id))
            .order_by(Run.created_at)
            .limit(1)
        )
        if run is None:
            return False
        evaluation.run_id, evaluation.state = run.id, RUNNING
        messages = await resume_messages(session, run) if run.state == RunState.RUNNING else []
    if messages:
        async with connect_broker(ServiceSettings().broker) as broker:
            await broker.publish_many(messages)
    console.print(
        f"evaluation {evaluation_id}: run {run.id} was submitted before the watch stopped; "
        f"linked ({len(messages)} messages re-published)"
    )
    return True


async def submit_runs(
    sessions: async_sessionmaker[AsyncSession],
    suite: LoadedSuite,
    target: Target,
    model: str,
    evaluations: Sequence[CheckpointEvaluation],
) -> None:
    """Step 2: one run per member whose evaluation has none (or adopt the orphan)."""
    specs = {row.id: spec for row, spec in suite.members}
    for evaluation in evaluations:
        if evaluation.run_id is not None or evaluation.state != PENDING:
            continue
        if await _adopt_orphan(sessions, evaluation.id):
            continue
        member = specs[evaluation.member_id]
        request = submission.run_request(
            benchmark=member.benchmark,
            policy=model,
            test_model=member.test_model,
            name=f"suite {suite.row.name} {member.name} {target.label}",
            settings=member.settings,
        )
        config = {
            "suite": {
                "suite": suite.row.name,
                "member": member.name,
                "evaluation": evaluation.id,
            }
        }
        submitted = await submission.submit_run(request, target.checkpoint, config)
        async with sessions.begin() as session:
            await session.execute(
                update(CheckpointEvaluation)
                .where(CheckpointEvaluation.id == evaluation.id)
                .values(run_id=submitted.run_id, state=RUNNING)
            )
        console.print(
            f"checkpoint {target.label}, member {member.name}: run {submitted.run_id} "
            f"(policy {submitted.policy})"
        )


async def _history(session: AsyncSession, evaluation: CheckpointEvaluation) -> list[Evaluated]:
    rows = await session.scalars(
        select(CheckpointEvaluation).where(
            CheckpointEvaluation.suite_id == evaluation.suite_id,
            CheckpointEvaluation.member_id == evaluation.member_id,
            CheckpointEvaluation.sequence < evaluation.sequence,
            CheckpointEvaluation.state == EVALUATED,
            CheckpointEvaluation.run_id.is_not(None),
        )
    )
    return [Evaluated(e.sequence, e.checkpoint, str(e.run_id), e.headline_value) for e in rows]


async def _versus(
    sessions: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    baseline: Evaluated | None,
    headline: str,
    spec: Bootstrap,
) -> dict[str, Any] | None:
    if baseline is None:
        return None
    comparison = await compare.load_comparison(sessions, str(run_id), baseline.run_id, spec)
    intervals = [dataclasses.asdict(i) for i in comparison.significance]
    return {
        "checkpoint": baseline.checkpoint,
        "sequence": baseline.sequence,
        "run_id": baseline.run_id,
        "common_problems": comparison.common,
        "headline": next((i for i in intervals if i["metric"] == headline), None),
        "intervals": intervals,
    }


async def judge(
    sessions: async_sessionmaker[AsyncSession],
    suite: LoadedSuite,
    evaluation: CheckpointEvaluation,
    spec: SuiteWatch,
) -> None:
    """Step 4: compare a finished run with the previous checkpoint's and the best so
    far, read the gates, store it all once."""
    assert evaluation.run_id is not None
    headline = evaluation.headline
    async with sessions() as session:
        history = await _history(session, evaluation)
        metrics = await store.run_metrics(session, evaluation.run_id)
    value = metrics[headline][0] if headline in metrics else None
    previous, best = previous_of(history), best_of(history)
    verdicts: dict[str, Any] = {
        "headline_metric": headline,
        "bootstrap": dataclasses.asdict(spec.bootstrap),
        "previous": await _versus(sessions, evaluation.run_id, previous, headline, spec.bootstrap),
    }
    if best is not None and previous is not None and best.run_id == previous.run_id:
        verdicts["best"] = verdicts["previous"]
    else:
        verdicts["best"] = await _versus(
            sessions, evaluation.run_id, best, headline, spec.bootstrap
        )
    regressions = find_regressions(verdicts, suite.gates)
    hook_state = None if not regressions else HOOK_PENDING if spec.hook else HOOK_UNSET
    async with sessions.begin() as session:
        await session.execute(
            update(CheckpointEvaluation)
            .where(CheckpointEvaluation.id == evaluation.id, CheckpointEvaluation.state == RUNNING)
            .values(
                state=EVALUATED,
                headline_value=value,
                previous_run_id=None if previous is None else uuid.UUID(previous.run_id),
                best_run_id=None if best is None else uuid.UUID(best.run_id),
                verdicts=verdicts,
                regressions=regressions,
                regressed=bool(regressions),
                hook_state=hook_state,
                finished_at=func.now(),
            )
        )


def hook_payload(
    suite: LoadedSuite, evaluation: CheckpointEvaluation, policy: str
) -> dict[str, Any]:
    """What the hook reads on stdin: the suite, checkpoint, member, run, headline
    figure, the regressions and every verdict against the previous and the best."""
    member = next(spec for row, spec in suite.members if row.id == evaluation.member_id)
    return {
        "suite": suite.row.name,
        "checkpoint": evaluation.checkpoint,
        "policy_model": policy,
        "sequence": evaluation.sequence,
        "member": member.name,
        "benchmark": member.benchmark,
        "test_model": member.test_model,
        "run_id": str(evaluation.run_id),
        "evaluation_id": evaluation.id,
        "headline": evaluation.headline,
        "headline_value": evaluation.headline_value,
        "regressions": evaluation.regressions,
        "verdicts": evaluation.verdicts,
    }


async def call_hook(
    sessions: async_sessionmaker[AsyncSession],
    suite: LoadedSuite,
    evaluation: CheckpointEvaluation,
    policy: str,
    command: str,
) -> int | None:
    """Step 5: record the call, then run ``command`` with the evaluation as JSON on
    stdin and ``CODERM_CHECKPOINT`` (and ``CODERM_SUITE``, ``CODERM_MEMBER``,
    ``CODERM_RUN_ID``) in its environment; store its exit code. ``None`` when the call
    was recorded already (by an earlier pass): it is not made again."""
    async with sessions.begin() as session:
        claimed = await session.scalar(
            update(CheckpointEvaluation)
            .where(
                CheckpointEvaluation.id == evaluation.id,
                CheckpointEvaluation.hook_state == HOOK_PENDING,
            )
            .values(hook_state=HOOK_CALLED, hook_called_at=func.now())
            .returning(CheckpointEvaluation.id)
        )
    if claimed is None:
        return None
    payload = json.dumps(hook_payload(suite, evaluation, policy), allow_nan=False).encode()
    member = next(row.name for row, _ in suite.members if row.id == evaluation.member_id)
    env = {
        **os.environ,
        "CODERM_CHECKPOINT": evaluation.checkpoint,
        "CODERM_SUITE": suite.row.name,
        "CODERM_MEMBER": member,
        "CODERM_RUN_ID": str(evaluation.run_id),
    }
    console.print(
        f"regression: checkpoint {evaluation.checkpoint}, member {member}: calling the hook"
    )
    try:
        process = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.PIPE, env=env
        )
        await process.communicate(payload)
        code = process.returncode
    except OSError as error:
        console.print(f"[yellow]the hook could not run: {error}[/yellow]")
        code = 127
    if code:
        console.print(f"[yellow]the hook exited with {code}[/yellow]")
    async with sessions.begin() as session:
        await session.execute(
            update(CheckpointEvaluation)
            .where(CheckpointEvaluation.id == evaluation.id)
            .values(hook_exit_code=code)
        )
    return code


async def evaluate_target(
    sessions: async_sessionmaker[AsyncSession], suite: LoadedSuite, target: Target, spec: SuiteWatch
) -> tuple[bool, bool]:
    """Steps 1 to 5 for one checkpoint; (every run finished, the pass may go on)."""
    model, ids = await record_evaluations(sessions, suite, target)
    evaluations = await _evaluations(sessions, ids)
    settled_states = {EVALUATED, FAILED}
    open_hooks = spec.hook is not None and any(e.hook_state == HOOK_PENDING for e in evaluations)
    if all(e.state in settled_states for e in evaluations) and not open_hooks:
        return all(e.state == EVALUATED for e in evaluations), True
    console.print(f"checkpoint {target.label}: model {model}, suite {suite.row.name}")
    await submit_runs(sessions, suite, target, model, evaluations)
    evaluations = await _evaluations(sessions, ids)
    ok = True
    for evaluation in evaluations:
        if evaluation.state != RUNNING or evaluation.run_id is None:
            continue
        progress = await wait_run(sessions, evaluation.run_id, spec.timeout_s)
        if progress.state == RunState.FAILED.value:
            console.print(f"[red]run {evaluation.run_id} failed[/red] {progress.error or ''}")
            async with sessions.begin() as session:
                await session.execute(
                    update(CheckpointEvaluation)
                    .where(
                        CheckpointEvaluation.id == evaluation.id,
                        CheckpointEvaluation.state == RUNNING,
                    )
                    .values(state=FAILED, finished_at=func.now())
                )
            ok = False
        elif progress.state != RunState.FINISHED.value:
            console.print(
                f"[red]run {evaluation.run_id} of {target.label}: {progress.state}[/red] "
                f"{progress.error or ''}; later checkpoints wait for it"
            )
            return False, False
    for evaluation in await _evaluations(sessions, ids):
        if evaluation.state == RUNNING:
            await judge(sessions, suite, evaluation, spec)
    evaluations = await _evaluations(sessions, ids)
    if spec.hook is not None:
        for evaluation in evaluations:
            if evaluation.hook_state == HOOK_PENDING:
                await call_hook(sessions, suite, evaluation, model, spec.hook)
        evaluations = await _evaluations(sessions, ids)
    console.print(evaluations_table(suite, evaluations))
    return ok, True


async def suite_watch_once(sessions: async_sessionmaker[AsyncSession], spec: SuiteWatch) -> bool:
    """One pass: the baseline (if any), then every settled checkpoint of the folder in
    natural order. Return whether every run finished."""
    async with sessions() as session:
        suite = await load_suite(session, spec.suite)
    targets = [Target(spec.baseline)] if spec.baseline else []
    for path in await asyncio.to_thread(settled, spec.folder, spec.settle_s, time.time()):
        targets.append(Target(path.name, await asyncio.to_thread(checkpoints.inspect, path)))
    ok = True
    for target in targets:
        finished, go_on = await evaluate_target(sessions, suite, target, spec)
        ok = ok and finished
        if not go_on:
            return False
    return ok


async def watch_suite(spec: SuiteWatch, once: bool) -> bool:
    """Watch until interrupted (or one pass with ``once``); whether every run finished."""
    engine = make_engine(ServiceSettings().database)
    try:
        sessions = make_sessionmaker(engine)
        while True:
            ok = await suite_watch_once(sessions, spec)
            if once:
                return ok
            await asyncio.sleep(spec.interval_s)
    finally:
        await engine.dispose()
