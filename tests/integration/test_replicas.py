"""Two executor replicas share a run: no pair executed twice, none missing, same table."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_codet_unittest_run import import_as_unittest
from tests.stack import (
    Services,
    Stack,
    cli,
    create_stack,
    drop_stack,
    metrics,
    query,
    run_services,
    submit,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
RUN = (
    *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b-ut"),
    *("--n", "12", "--m", "30", "--problems", "5"),
)


def import_demo(stack: Stack) -> None:
    """Benchmark, CodeT solution bodies, and the test samples as unittest classes."""
    for step in (
        (
            *("import-benchmark", "humaneval", "--file", str(DEMO / "humaneval.jsonl.gz")),
            *("--test-prompts", str(DEMO / "humaneval_test_prompts.jsonl.gz")),
        ),
        (
            *("import-completions", str(DEMO / "codegen16b_solutions.jsonl.gz")),
            *("--benchmark", "humaneval", "--model", "codegen16b", "--role", "solution"),
        ),
    ):
        result = cli(stack, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    import_as_unittest(stack, "codegen16b-ut")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Services]]:
    """A second, fresh slice of the stack (own database, so nothing is cached) with two
    executor replicas of one sandbox each, and small batches so both get work."""
    stack = create_stack(tmp_path_factory.mktemp("replica-logs"))
    try:
        import_demo(stack)
        yield from (
            (stack, services)
            for services in run_services(
                stack, executors=2, CODERM_SOLUTIONS_PER_BATCH="2", CODERM_CONCURRENCY="1"
            )
        )
    finally:
        drop_stack(stack)


def matrix(stack: Stack, run_id: str) -> dict[tuple[str, str], bool]:
    """The run's verdicts keyed by (solution hash, test hash), comparable across databases."""
    rows = query(
        stack,
        """SELECT s.content_hash AS solution, t.content_hash AS test, e.passed
           FROM runs r JOIN execution_batches b ON b.run_id = r.id
           JOIN solutions s ON s.id::text IN (SELECT jsonb_array_elements_text(b.solution_ids))
           JOIN executions e ON e.solution_id = s.id AND e.profile = r.exec_profile
           JOIN unit_tests t ON t.id = e.unit_test_id
           WHERE r.id = $1
             AND t.id IN (SELECT ct.unit_test_id FROM completion_tests ct
                          JOIN run_completions rt ON rt.completion_id = ct.completion_id
                          WHERE rt.run_id = r.id)""",
        uuid.UUID(run_id),
    )
    out = {(row["solution"], row["test"]): bool(row["passed"]) for row in rows}
    assert len(out) == len(rows), "a (solution, test) pair is stored twice"
    return out


def executed_batches(log_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """The ``batch.executed`` events of the run in every executor log of a slice."""
    events = []
    for log in sorted(log_dir.glob("executor*.log")):
        for line in log.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "batch.executed" and event.get("run_id") == run_id:
                events.append(event)
    return events


@pytest.mark.usefixtures("imported")
def test_two_replicas_share_a_run(
    stack: Stack, services: Services, replicas: tuple[Stack, Services]
) -> None:
    """The same run on one executor (the session's slice) and on two replicas (a fresh
    slice): every pair executed exactly once, by either replica, both replicas busy,
    and the same verdicts and metrics."""
    import_as_unittest(stack, "codegen16b-ut")
    single = submit(stack, *RUN)
    wait_run_finished(stack, services, single, timeout=240)

    replica_stack, replica_services = replicas
    shared = submit(replica_stack, *RUN)
    wait_run_finished(replica_stack, replica_services, shared, timeout=240)

    one, two = matrix(stack, single), matrix(replica_stack, shared)
    assert one and two == one
    assert metrics(replica_stack, shared) == metrics(stack, single)

    events = executed_batches(replica_stack.log_dir, shared)
    batches = query(
        replica_stack,
        "SELECT count(*) AS n, count(done_at) AS done FROM execution_batches WHERE run_id = $1",
        uuid.UUID(shared),
    )[0]
    assert batches["n"] == batches["done"] > 1
    runs_of_batch = Counter((e["problem_id"], e["batch_no"]) for e in events)
    assert len(runs_of_batch) == batches["n"]
    assert set(runs_of_batch.values()) == {1}, "a batch was executed twice"
    assert sum(e["pairs"] for e in events) == len(two), "pairs executed != pairs stored"
    work = Counter(e["executor"] for e in events if e["pairs"])
    assert set(work) == {"executor", "executor-2"}, work
