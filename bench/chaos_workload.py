"""The run the fault tests and bench/chaos.py disturb, and what they compare after.

One workload (the bundled HumanEval sample: 12 problems, 20 solution and 30 test
samples each, run as 104 sandbox batches of two solutions, or 208 of one) is run
once undisturbed as the reference; each faulted run of it must end with the same
metrics, selections and number of verdict rows, with no dead letter and no sandbox
container left behind.
Every query here tolerates the servers being down (the fault may be on): it answers
``None`` instead of raising.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
import aiormq
import asyncpg

from tests.stack import (
    ROOT,
    Services,
    Stack,
    cli,
    dead_letters,
    metrics,
    query,
    run_state,
    submit,
)

DEMO = ROOT / "data" / "demo"
RUN_ARGS = (
    "--benchmark",
    "humaneval",
    "--policy",
    "codegen16b",
    "--test-model",
    "codegen16b",
    "--n",
    "20",
    "--m",
    "30",
    "--problems",
    "12",
    "--assert-time-limit",
    "0.45",
)
SOLUTIONS_PER_BATCH = int(os.environ.get("CODERM_FAULT_SOLUTIONS_PER_BATCH", "2"))
"""Solutions a batch: 2 gives the workload 104 batches (the fault tests), 1 gives it
208 (bench/chaos.py's default)."""


def service_env(solutions_per_batch: int = SOLUTIONS_PER_BATCH) -> dict[str, str]:
    """The services' settings for the workload."""
    return {"CODERM_SOLUTIONS_PER_BATCH": str(solutions_per_batch), "CODERM_METRICS_PORT": "0"}


T = TypeVar("T")
DOWN_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    asyncio.TimeoutError,
)


def tolerant(read: Callable[[], T]) -> T | None:
    """``read()``, or ``None`` when a server it needs is down or refuses."""
    try:
        return read()
    except DOWN_ERRORS:
        return None


@dataclass(frozen=True)
class Outcome:
    """What a finished run must have exactly as the reference has it."""

    metrics: dict[str, float]
    selections: dict[tuple[int, str], float]
    verdicts: int
    batches: int


def import_sample(stack: Stack) -> None:
    """Import the bundled HumanEval sample (problems, solutions, tests) via the CLI."""
    steps = [
        (
            "import-benchmark",
            "humaneval",
            "--file",
            str(DEMO / "humaneval.jsonl.gz"),
            "--test-prompts",
            str(DEMO / "humaneval_test_prompts.jsonl.gz"),
        ),
        *(
            (
                "import-completions",
                str(DEMO / file),
                "--benchmark",
                "humaneval",
                "--model",
                "codegen16b",
                "--role",
                role,
            )
            for role, file in (
                ("solution", "codegen16b_solutions.jsonl.gz"),
                ("test", "codegen16b_tests.jsonl.gz"),
            )
        ),
    ]
    for step in steps:
        result = cli(stack, *step)
        if result.returncode != 0:
            raise RuntimeError(result.stdout + result.stderr)


def forget_verdicts(stack: Stack) -> None:
    """Drop every stored verdict and label, so that the next run executes all its
    batches again instead of reading the cache."""
    query(stack, "TRUNCATE verdicts, verdict_detail_overflow, ground_truth")


def start_run(stack: Stack) -> str:
    """Submit the workload (after :func:`forget_verdicts`); its run id."""
    forget_verdicts(stack)
    return submit(stack, *RUN_ARGS)


def batches_done(stack: Stack, run_id: str) -> int | None:
    """Executed batches of the run (``None`` while PostgreSQL is unreachable)."""
    sql = "SELECT count(*) AS n FROM execution_batches WHERE run_id = $1 AND done_at IS NOT NULL"
    rows = tolerant(lambda: query(stack, sql, uuid.UUID(run_id)))
    return None if rows is None else int(rows[0]["n"])


def wait_batches(stack: Stack, run_id: str, count: int, timeout: float) -> None:
    """Wait until ``count`` batches of the run are done."""
    deadline = time.monotonic() + timeout
    while (batches_done(stack, run_id) or 0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id}: fewer than {count} batches in {timeout:.0f}s")
        time.sleep(0.2)


def wait_progress(stack: Stack, run_id: str, since: int, timeout: float) -> float:
    """Seconds until the run has more than ``since`` batches done, or is finished."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = batches_done(stack, run_id)
        if done is not None and done > since:
            return time.monotonic() - started
        if tolerant(lambda: run_state(stack, run_id)) == "finished":
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} made no progress in {timeout:.0f}s")


def wait_finished(stack: Stack, services: Services, run_id: str, timeout: float) -> float:
    """Wait until the run is finished, failing early if a service exited or a message
    was dead-lettered; the seconds it took."""
    started = time.monotonic()
    while True:
        dead = {name: code for name, code in services.exit_codes().items() if code is not None}
        if dead:
            raise RuntimeError(f"services exited: {dead}; logs in {stack.log_dir}")
        letters = tolerant(lambda: dead_letters(stack))
        if letters:
            raise RuntimeError(f"dead-lettered messages {letters}; logs in {stack.log_dir}")
        if tolerant(lambda: run_state(stack, run_id)) == "finished":
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"run {run_id} not finished in {timeout:.0f}s ({stack.log_dir})")
        time.sleep(0.5)


def outcome(stack: Stack, run_id: str) -> Outcome:
    """The finished run's metrics, selections, verdict rows and executed batches."""
    run = uuid.UUID(run_id)
    picks = query(
        stack, "SELECT problem_id, strategy, score FROM selections WHERE run_id = $1", run
    )
    verdicts = query(
        stack,
        "SELECT count(*) AS n FROM executions e JOIN runs r ON r.exec_profile = e.profile"
        " WHERE r.id = $1",
        run,
    )
    done = batches_done(stack, run_id)
    assert done is not None
    return Outcome(
        metrics(stack, run_id),
        {(r["problem_id"], r["strategy"]): r["score"] for r in picks},
        int(verdicts[0]["n"]),
        done,
    )


def differences(expected: Outcome, got: Outcome) -> list[str]:
    """What differs between two outcomes (empty when identical)."""
    out = []
    if got.metrics != expected.metrics:
        changed = {
            k: (expected.metrics.get(k), got.metrics.get(k))
            for k in expected.metrics.keys() | got.metrics.keys()
            if expected.metrics.get(k) != got.metrics.get(k)
        }
        out.append(f"metrics differ: {changed}")
    if got.selections != expected.selections:
        out.append("selections differ")
    if got.verdicts != expected.verdicts:
        out.append(f"verdict rows: {got.verdicts} instead of {expected.verdicts}")
    if got.batches != expected.batches:
        out.append(f"executed batches: {got.batches} instead of {expected.batches}")
    return out
