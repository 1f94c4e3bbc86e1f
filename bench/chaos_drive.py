"""Drive one fault through one run of the workload and judge the result.

:func:`run_reference` runs the workload undisturbed; :func:`run_faulted` runs it again,
injects a fault once batches are running, waits for the run to finish and checks what
the system guarantees (docs/FAULTS.md): the same metrics, selections, verdict rows and
executed batches as the reference, no dead letter, no sandbox container left behind,
every service still running.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from bench.chaos_faults import SANDBOX_FILTER, Fault, FaultContext
from bench.chaos_workload import (
    Outcome,
    batches_done,
    differences,
    outcome,
    start_run,
    wait_batches,
    wait_finished,
    wait_progress,
)
from sandbox.client.container import DEADLINE_LABEL
from tests.faults.infra import PrivateInfra
from tests.stack import Services, Stack

RUN_TIMEOUT_S = 900.0
STARTED_BATCHES = 8
"""Batches done before the fault is injected (the run is well under way)."""
LEFTOVER_TIMEOUT_S = 120.0
"""How long the executor's sweeper may take to remove what a fault left behind."""


@dataclass
class FaultResult:
    """How one faulted run went."""

    fault: str
    finished: bool = False
    identical: bool = False
    recovery_s: float | None = None
    run_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        """Finished with no service down, no dead letter and nothing left behind."""
        return self.finished and not [p for p in self.problems if not p.startswith("differ")]


def run_reference(stack: Stack, services: Services) -> Outcome:
    """Run the workload undisturbed; its outcome."""
    run_id = start_run(stack)
    wait_finished(stack, services, run_id, RUN_TIMEOUT_S)
    return outcome(stack, run_id)


def leftover_sandboxes(infra: PrivateInfra) -> list[str]:
    """Sandbox containers on the private engine that no batch can be using: not
    running, or running past the deadline in their label (a warm container waiting for
    a request is running, before its deadline)."""
    listed = infra.docker.docker(
        "ps", "-a", "--filter", SANDBOX_FILTER, "--format", "{{json .}}"
    ).stdout.splitlines()
    left = []
    for line in listed:
        container = json.loads(line)
        labels = dict(
            item.split("=", 1)
            for item in str(container.get("Labels", "")).split(",")
            if "=" in item
        )
        deadline = float(labels.get(DEADLINE_LABEL, "inf"))
        if container.get("State") != "running" or time.time() > deadline:
            left.append(f"{container.get('ID')} ({container.get('Status')})")
    return left


def _wait_no_leftovers(infra: PrivateInfra) -> list[str]:
    deadline = time.monotonic() + LEFTOVER_TIMEOUT_S
    while (left := leftover_sandboxes(infra)) and time.monotonic() < deadline:
        time.sleep(1)
    return left


def run_faulted(
    fault: Fault, infra: PrivateInfra, stack: Stack, services: Services, reference: Outcome
) -> FaultResult:
    """Run the workload with ``fault`` injected once batches run; judge it against
    ``reference``."""
    result = FaultResult(fault.name)
    ctx = FaultContext(infra, stack)
    fault.prepare(ctx)
    started = time.monotonic()
    try:
        ctx.run_id = start_run(stack)
        wait_batches(stack, ctx.run_id, STARTED_BATCHES, RUN_TIMEOUT_S)
        fault.inject(ctx)
        at_end = batches_done(stack, ctx.run_id) or STARTED_BATCHES
        result.recovery_s = wait_progress(stack, ctx.run_id, at_end, RUN_TIMEOUT_S)
        wait_finished(stack, services, ctx.run_id, RUN_TIMEOUT_S)
        result.finished = True
    except (RuntimeError, TimeoutError) as exc:
        result.problems.append(f"not finished: {exc}")
    finally:
        result.run_s = time.monotonic() - started
        fault.cleanup(ctx)
    result.notes = ctx.notes
    if result.finished:
        diff = differences(reference, outcome(stack, ctx.run_id))
        result.identical = not diff
        result.problems += [f"differs: {d}" for d in diff]
    left = _wait_no_leftovers(infra)
    if left:
        result.problems.append(f"sandbox containers left behind: {left}")
    down = {name: code for name, code in services.exit_codes().items() if code is not None}
    if down:
        result.problems.append(f"services exited: {down}")
    return result
