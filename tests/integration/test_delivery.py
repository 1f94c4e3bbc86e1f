"""Delivery guarantees: dead letters, redelivery, and an executor killed mid-run."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from shared.broker import REASON_HEADER
from shared.enums import Role
from shared.messages import ExecuteBatch, ExtractRequest, GenerateRequest, ScoreProblem
from tests.stack import (
    Services,
    Stack,
    cli,
    dead_letters,
    metrics,
    publish_raw,
    query,
    queue_depth,
    submit,
    take_dead,
    wait_for,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")


def _wait_dead(stack: Stack, kind: str, seconds: float) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message to arrive in a dead-letter queue, taken out of it."""
    return asyncio.run(asyncio.wait_for(take_dead(stack, kind, 1), seconds))[0]


@pytest.mark.usefixtures("imported")
def test_malformed_or_unknown_message_is_dead_lettered_with_reason(
    stack: Stack, services: Services
) -> None:
    """A body that fails validation, or names a run that does not exist, lands in the
    DLQ at once with why; the service keeps going."""
    body = b'{"kind": "generate", "run_id": "not-a-uuid", "problem_id": 1}'
    asyncio.run(publish_raw(stack, "generate", body))
    dead = _wait_dead(stack, "generate", 30)
    assert dead.body == body
    assert "invalid message" in str((dead.headers or {})[REASON_HEADER])
    unknown = GenerateRequest(run_id=uuid.uuid4(), problem_id=1, role=Role.SOLUTION, count=1)
    asyncio.run(publish_raw(stack, "generate", unknown.to_body()))
    dead = _wait_dead(stack, "generate", 30)
    assert dead.body == unknown.to_body()
    assert "not found" in str((dead.headers or {})[REASON_HEADER])
    asyncio.run(publish_raw(stack, "score", b"not json at all"))
    wait_for(lambda: dead_letters(stack).get("score") == 1, 30, "a dead-lettered score message")
    listing = cli(stack, "dead-letters")
    assert listing.returncode == 0, listing.stderr
    assert "score" in listing.stdout and "invalid message" in listing.stdout
    assert dead_letters(stack).get("score") == 1  # listing put it back
    _wait_dead(stack, "score", 10)
    assert all(code is None for code in services.exit_codes().values())

    run_id = submit(stack, *RUN_ARGS, "--n", "3", "--m", "5", "--problems", "2")
    wait_run_finished(stack, services, run_id, timeout=180)


@pytest.mark.usefixtures("imported")
def test_redelivered_batch_changes_nothing(stack: Stack, services: Services) -> None:
    """Publishing a finished run's batch again adds no rows and changes no number."""
    run_id = submit(stack, *RUN_ARGS, "--n", "4", "--m", "5", "--problems", "2")
    wait_run_finished(stack, services, run_id, timeout=180)
    before = metrics(stack, run_id)
    count = "SELECT count(*) AS n FROM executions"
    rows_before = query(stack, count)[0]["n"]
    batch = query(
        stack,
        "SELECT problem_id FROM execution_batches WHERE run_id = $1 AND batch_no = 0 LIMIT 1",
        uuid.UUID(run_id),
    )[0]
    solution_ids = [
        r["solution_id"]
        for r in query(
            stack,
            """SELECT DISTINCT cs.solution_id FROM run_completions rc
               JOIN completion_solutions cs ON cs.completion_id = rc.completion_id
               WHERE rc.run_id = $1 AND rc.problem_id = $2""",
            uuid.UUID(run_id),
            batch["problem_id"],
        )
    ]
    message = ExecuteBatch(
        run_id=uuid.UUID(run_id),
        problem_id=batch["problem_id"],
        batch_no=0,
        solution_ids=solution_ids,
    )
    asyncio.run(publish_raw(stack, "execute", message.to_body()))
    asyncio.run(publish_raw(stack, "execute", message.to_body()))
    wait_for(
        lambda: queue_depth(stack, "execute") == queue_depth(stack, "score") == 0, 60, "queues"
    )
    assert query(stack, count)[0]["n"] == rows_before
    assert metrics(stack, run_id) == before


@pytest.mark.usefixtures("imported")
def test_executor_sigkill_mid_run_gives_identical_numbers(stack: Stack, services: Services) -> None:
    """Kill -9 the executor after some batches are done; the restarted one finishes the
    run with exactly the numbers of an uninterrupted run of the same work."""
    args = (*RUN_ARGS, "--n", "30", "--m", "40", "--problems", "8", "--assert-time-limit", "0.45")
    clean = submit(stack, *args)
    wait_run_finished(stack, services, clean, timeout=600)
    expected = metrics(stack, clean)
    expected_picks = _selections(stack, clean)
    query(
        stack,
        "DELETE FROM verdicts WHERE profile_id IN "
        "(SELECT id FROM exec_profiles WHERE name LIKE '%t450ms%')",
    )
    query(stack, "DELETE FROM ground_truth")

    interrupted = submit(stack, *args)
    wait_for(lambda: _batches_done(stack, interrupted) >= 2, 300, "two executed batches", every=0.1)
    assert _batches_done(stack, interrupted) < _batches_total(stack, interrupted)
    services.kill("executor")
    services.start("executor")
    wait_run_finished(stack, services, interrupted, timeout=600)

    assert metrics(stack, interrupted) == expected
    assert _selections(stack, interrupted) == expected_picks


@pytest.mark.usefixtures("imported")
def test_executor_sigterm_mid_run_exits_cleanly_and_loses_nothing(
    stack: Stack, services: Services
) -> None:
    """SIGTERM stops consuming, finishes or requeues what is in hand and exits 0; a new
    executor finishes the run."""
    args = (*RUN_ARGS, "--n", "25", "--m", "40", "--problems", "6", "--assert-time-limit", "0.35")
    run_id = submit(stack, *args)
    wait_for(lambda: _batches_done(stack, run_id) >= 1, 300, "an executed batch", every=0.1)
    assert services.terminate("executor") == 0
    services.start("executor")
    wait_run_finished(stack, services, run_id, timeout=600)
    assert _batches_done(stack, run_id) == _batches_total(stack, run_id)
    assert "codet.pass@1" in metrics(stack, run_id)


def _batches_done(stack: Stack, run_id: str) -> int:
    rows = query(
        stack,
        "SELECT count(*) AS n FROM execution_batches WHERE run_id = $1 AND done_at IS NOT NULL",
        uuid.UUID(run_id),
    )
    return int(rows[0]["n"])


def _batches_total(stack: Stack, run_id: str) -> int:
    rows = query(
        stack, "SELECT count(*) AS n FROM execution_batches WHERE run_id = $1", uuid.UUID(run_id)
    )
    return int(rows[0]["n"])


def _selections(stack: Stack, run_id: str) -> dict[tuple[int, str], float]:
    rows = query(
        stack,
        "SELECT problem_id, strategy, score FROM selections WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    return {(r["problem_id"], r["strategy"]): r["score"] for r in rows}


STAGE_STARTED = {
    "generator": "SELECT count(*) AS n FROM run_completions WHERE run_id = $1",
    "extractor": "SELECT count(*) AS n FROM run_problems WHERE run_id = $1 AND state <> 'pending'",
    "scorer": "SELECT count(*) AS n FROM run_problems WHERE run_id = $1 AND state = 'scored'",
}


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("victim", sorted(STAGE_STARTED))
def test_sigkill_of_any_service_mid_run_gives_identical_numbers(
    stack: Stack, services: Services, victim: str
) -> None:
    """Kill -9 a service as soon as its stage has started on a run; after a restart the
    run finishes with the numbers of an uninterrupted run of the same work."""
    args = (*RUN_ARGS, "--n", "20", "--m", "30", "--problems", "12", "--assert-time-limit", "0.3")
    clean = submit(stack, *args)
    wait_run_finished(stack, services, clean, timeout=600)

    interrupted = submit(stack, *args)

    def started() -> bool:
        rows = query(stack, STAGE_STARTED[victim], uuid.UUID(interrupted))
        return int(rows[0]["n"]) > 0

    wait_for(started, 120, f"the {victim} stage", every=0.02)
    services.kill(victim)
    services.start(victim)
    wait_run_finished(stack, services, interrupted, timeout=600)
    assert metrics(stack, interrupted) == metrics(stack, clean)
    assert _selections(stack, interrupted) == _selections(stack, clean)


@pytest.mark.usefixtures("imported")
def test_dead_lettered_message_marks_its_run_and_resume_finishes_it(
    stack: Stack, services: Services
) -> None:
    """A run whose message is dead-lettered says so (status, and a follower stops with
    the reason instead of waiting); ``coderm resume`` re-drives it to the end."""
    services.kill("generator")
    run_id = submit(stack, *RUN_ARGS, "--n", "4", "--m", "6", "--problems", "2")
    bogus = ExtractRequest(
        run_id=uuid.UUID(run_id), problem_id=10**9, role=Role.SOLUTION, completion_ids=[]
    )
    asyncio.run(publish_raw(stack, "extract", bogus.to_body()))
    wait_for(lambda: dead_letters(stack).get("extract") == 1, 30, "the dead-lettered message")
    _wait_dead(stack, "extract", 10)

    status = cli(stack, "status", run_id)
    assert "extract message dead-lettered" in status.stdout
    follow = cli(stack, "status", run_id, "--follow", timeout=60)
    assert follow.returncode == 1
    assert "UnknownReferenceError" in follow.stdout and "coderm resume" in follow.stdout

    services.start("generator")
    resumed = cli(stack, "resume", run_id, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "random pick" in resumed.stdout
    assert "error" not in cli(stack, "status", run_id).stdout


@pytest.mark.usefixtures("imported")
def test_redelivered_score_of_a_scored_problem_finishes_its_run(
    stack: Stack, services: Services
) -> None:
    """The scorer scored the last problem but died before closing the run: the
    redelivered score request closes it, with the same metrics."""
    run_id = submit(stack, *RUN_ARGS, "--n", "4", "--m", "5", "--problems", "2")
    wait_run_finished(stack, services, run_id, timeout=180)
    expected = metrics(stack, run_id)
    run = uuid.UUID(run_id)
    query(stack, "DELETE FROM run_metrics WHERE run_id = $1", run)
    query(stack, "UPDATE runs SET state = 'running', finished_at = NULL WHERE id = $1", run)
    problem = query(stack, "SELECT problem_id FROM run_problems WHERE run_id = $1 LIMIT 1", run)
    message = ScoreProblem(run_id=run, problem_id=problem[0]["problem_id"])
    asyncio.run(publish_raw(stack, "score", message.to_body()))
    wait_run_finished(stack, services, run_id, timeout=60)
    assert metrics(stack, run_id) == expected
