"""The life of runs and problems on the real stack: no state goes backwards on a
redelivered message, a run that cannot finish fails with its reason, and only a resume
takes a failed run back to running."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from pydantic import SecretStr

from shared.db.models import Run
from shared.db.session import make_engine, make_sessionmaker
from shared.enums import Role, RunState
from shared.messages import ExecuteBatch, ExtractRequest
from shared.runs.lifecycle import resume_run
from shared.settings import DatabaseSettings
from tests.stack import (
    ROOT,
    Services,
    Stack,
    cli,
    consumer_count,
    dead_letters,
    dead_reason,
    metrics,
    publish,
    query,
    queue_depth,
    run_state,
    submit,
    take_dead,
    wait_for,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")
DEMO = ROOT / "data" / "demo"
GROUND_TRUTH = "humaneval-lifecycle"
"""A copy of the demo benchmark that labels the failing runs (so that one of its
problems can go missing without touching the benchmark other tests use)."""
GONE = "#gone"


def _extractions(stack: Stack, run_id: str, problem_id: int) -> int:
    """How many ``ExtractRequest`` messages of a run's problem the extractor has handled
    (its ``extract.done`` log events)."""
    handled = 0
    for line in (stack.log_dir / "extractor.log").read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(event, dict)
            and event.get("event") == "extract.done"
            and event.get("run_id") == run_id
            and event.get("problem_id") == problem_id
        ):
            handled += 1
    return handled


def _problem_states(stack: Stack, run: uuid.UUID) -> dict[int, str]:
    rows = query(stack, "SELECT problem_id, state FROM run_problems WHERE run_id = $1", run)
    return {int(r["problem_id"]): str(r["state"]) for r in rows}


def _run_row(stack: Stack, run: uuid.UUID) -> dict[str, object]:
    rows = query(stack, "SELECT state, error, finished_at FROM runs WHERE id = $1", run)
    return dict(rows[0])


@pytest.mark.usefixtures("imported")
def test_extract_request_redelivered_after_scoring_changes_nothing(
    stack: Stack, services: Services
) -> None:
    """One of a finished run's ``ExtractRequest`` messages published again leaves its
    problem scored (no batch planned again) and the run finished with the same metrics."""
    run_id = submit(stack, *RUN_ARGS, "--n", "4", "--m", "5", "--problems", "2")
    wait_run_finished(stack, services, run_id, timeout=180)
    run = uuid.UUID(run_id)
    expected_metrics = metrics(stack, run_id)
    expected_run = _run_row(stack, run)
    problem_id = int(
        query(
            stack,
            "SELECT problem_id FROM execution_batches WHERE run_id = $1 ORDER BY problem_id",
            run,
        )[0]["problem_id"]
    )
    completion_ids = [
        int(r["completion_id"])
        for r in query(
            stack,
            """SELECT completion_id FROM run_completions
               WHERE run_id = $1 AND problem_id = $2 AND role = 'test'""",
            run,
            problem_id,
        )
    ]
    message = ExtractRequest(
        run_id=run, problem_id=problem_id, role=Role.TEST, completion_ids=completion_ids
    )
    handled = _extractions(stack, run_id, problem_id)
    services.kill("executor")  # a batch planned again would wait in its queue
    try:
        asyncio.run(publish(stack, message))
        wait_for(
            lambda: _extractions(stack, run_id, problem_id) > handled,
            60,
            "the extractor to handle the request again",
        )
        assert set(_problem_states(stack, run).values()) == {"scored"}
        assert queue_depth(stack, "execute") == 0
    finally:
        services.start("executor")
        wait_for(lambda: consumer_count(stack, "execute") >= 1, 60, "the executor's consumer")
    assert _run_row(stack, run) == expected_run
    assert metrics(stack, run_id) == expected_metrics


def _failing_run(stack: Stack, services: Services) -> tuple[uuid.UUID, int, str]:
    """A two-problem run whose first problem's ground truth goes missing after the run
    was created: the executor cannot label that problem's solutions (a permanent
    error), while the other problem goes through. Returns the run, that problem and its
    task id (renamed in the ground-truth benchmark until :func:`_restore`)."""
    imported = cli(
        stack,
        "import-benchmark",
        GROUND_TRUTH,
        "--format",
        "humaneval",
        "--file",
        str(DEMO / "humaneval.jsonl.gz"),
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    services.kill("generator")
    try:
        run = uuid.UUID(
            submit(
                stack,
                *RUN_ARGS,
                *("--n", "4", "--m", "5", "--problems", "2"),
                "--ground-truth",
                GROUND_TRUTH,
            )
        )
        first = query(
            stack,
            """SELECT p.id, p.task_id FROM run_problems rp JOIN problems p ON p.id = rp.problem_id
               WHERE rp.run_id = $1 ORDER BY p.position LIMIT 1""",
            run,
        )[0]
        query(
            stack,
            """UPDATE problems SET task_id = task_id || $3
               WHERE benchmark_id = (SELECT id FROM benchmarks WHERE name = $1)
                 AND task_id = $2""",
            GROUND_TRUTH,
            first["task_id"],
            GONE,
        )
    finally:
        services.start("generator")
    return run, int(first["id"]), str(first["task_id"])


def _restore(stack: Stack, task_id: str) -> None:
    query(
        stack,
        """UPDATE problems SET task_id = $2
           WHERE benchmark_id = (SELECT id FROM benchmarks WHERE name = $1)
             AND task_id = $2 || $3""",
        GROUND_TRUTH,
        task_id,
        GONE,
    )


def _wait_failed(stack: Stack, run: uuid.UUID, problem_id: int) -> list[str]:
    """Wait for the run to fail; take its problem's dead-lettered batches out of the
    dead-letter queue (other tests expect it empty) and return their reasons."""
    wait_for(lambda: run_state(stack, str(run)) == "failed", 180, f"run {run} to fail")
    batches = query(
        stack,
        "SELECT count(*) AS n FROM execution_batches WHERE run_id = $1 AND problem_id = $2",
        run,
        problem_id,
    )[0]["n"]
    assert batches >= 1
    taken = asyncio.run(asyncio.wait_for(take_dead(stack, "execute", int(batches)), 60))
    return [dead_reason(message) for message in taken]


@pytest.mark.usefixtures("imported")
def test_run_with_an_unprocessable_problem_fails_with_its_reason(
    stack: Stack, services: Services
) -> None:
    """A problem whose batches are dead-lettered fails its run with the reason in
    ``runs.error``; ``coderm status`` shows it and ``--follow`` stops with it, non-zero."""
    run, problem_id, task_id = _failing_run(stack, services)
    try:
        reasons = _wait_failed(stack, run, problem_id)
    finally:
        _restore(stack, task_id)
    assert all("UnknownReferenceError" in r and task_id in r for r in reasons)
    error = str(_run_row(stack, run)["error"])
    assert error.startswith("execute message dead-lettered: UnknownReferenceError")
    assert f"no ground-truth problem {task_id!r}" in error
    assert _problem_states(stack, run)[problem_id] == "extracted"

    status = cli(stack, "status", str(run))
    assert status.returncode == 0, status.stdout + status.stderr
    flat = " ".join(status.stdout.split())
    assert "state: failed" in flat and "UnknownReferenceError" in flat

    follow = cli(stack, "status", str(run), "--follow", timeout=120)
    assert follow.returncode != 0
    flat = " ".join(follow.stdout.split())
    assert "execute message dead-lettered: UnknownReferenceError" in flat
    assert f"no ground-truth problem {task_id!r}" in flat


async def _resume(stack: Stack, run_id: uuid.UUID) -> tuple[RunState, str | None]:
    """``resume_run`` on the run in a transaction of its own; its state and error after."""
    engine = make_engine(DatabaseSettings(url=SecretStr(stack.database_url)))
    try:
        async with make_sessionmaker(engine).begin() as session:
            run = await session.get(Run, run_id)
            assert run is not None
            state = await resume_run(session, run)
            return state, run.error
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("imported")
def test_failed_run_is_finished_only_after_resume(stack: Stack, services: Services) -> None:
    """Once the cause is fixed and every problem is scored, a failed run stays failed;
    ``coderm resume`` takes it back to running with its error cleared and sends the one
    score request that lets the scorer finish it."""
    run, problem_id, task_id = _failing_run(stack, services)
    try:
        _wait_failed(stack, run, problem_id)
    finally:
        _restore(stack, task_id)
    batches = [
        ExecuteBatch(
            run_id=run,
            problem_id=problem_id,
            batch_no=int(r["batch_no"]),
            solution_ids=[int(s) for s in json.loads(r["solution_ids"])],
        )
        for r in query(
            stack,
            """SELECT batch_no, solution_ids FROM execution_batches
               WHERE run_id = $1 AND problem_id = $2""",
            run,
            problem_id,
        )
    ]
    asyncio.run(publish(stack, *batches))
    wait_for(
        lambda: set(_problem_states(stack, run).values()) == {"scored"}, 180, "every problem scored"
    )
    assert run_state(stack, str(run)) == "failed"
    assert not metrics(stack, str(run))

    resumed = cli(stack, "resume", str(run), timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 messages re-published" in resumed.stdout
    wait_run_finished(stack, services, str(run), timeout=120)
    assert _run_row(stack, run)["error"] is None
    assert "codet.pass@1" in metrics(stack, str(run))
    assert asyncio.run(_resume(stack, run)) == (RunState.FINISHED, None)
    assert dead_letters(stack) == {}
