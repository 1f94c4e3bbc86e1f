"""Chaos bench: every infrastructure fault, in a loop, against private servers.

    .venv/bin/python -m bench.chaos [--rounds R] [--solutions-per-batch K] [--only NAME ...]

Starts a private PostgreSQL, RabbitMQ and dockerd (tests/faults/infra.py; the shared
servers are never touched), the four services on them, runs the workload of
bench/chaos_workload.py once undisturbed, then R times each fault of
bench/chaos_faults.py during a run of it, and prints one row a faulted run: whether
the system survived it (the run finished, no service exited, no dead letter, no
sandbox container left behind), the recovery time (from the end of the fault to the
next executed batch, or the end of the run) and whether the run's metrics, selections
and verdict rows are identical to the undisturbed run's. Exits 1 unless every row is
yes/yes. docs/FAULTS.md has a printed table.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from bench.chaos_drive import FaultResult, run_faulted, run_reference
from bench.chaos_faults import FAULTS
from bench.chaos_workload import import_sample, service_env
from tests.faults.infra import PrivateInfra
from tests.stack import create_stack, drop_stack, run_services


def table(results: list[FaultResult]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| fault | survived | recovery (s) | identical metrics | run (s) | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        notes = "; ".join(r.notes + r.problems).replace("|", "/")[:200]
        lines.append(
            f"| {r.fault} | {'yes' if r.survived else 'no'} | {recovery} | "
            f"{'yes' if r.identical else 'no'} | {r.run_s:.0f} | {notes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every fault was survived with identical numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="times each fault is injected")
    parser.add_argument(
        "--solutions-per-batch", type=int, default=1, help="1: 208 batches a run, 2: 104"
    )
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="these faults only")
    args = parser.parse_args(argv)
    names = args.only or list(FAULTS)
    infra = PrivateInfra()
    results: list[FaultResult] = []
    try:
        infra.start()
        log_dir = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
        stack = create_stack(log_dir, infra.postgres.admin_dsn, infra.rabbit.url)
        try:
            import_sample(stack)
            services_cm = contextlib.contextmanager(run_services)
            with services_cm(
                stack, 1, **service_env(args.solutions_per_batch), **infra.service_env()
            ) as services:
                reference = run_reference(stack, services)
                print(f"reference run done; service logs in {log_dir}", flush=True)
                for _ in range(args.rounds):
                    for name in names:
                        result = run_faulted(FAULTS[name], infra, stack, services, reference)
                        results.append(result)
                        print(table([result]).splitlines()[-1], flush=True)
        finally:
            drop_stack(stack)
    finally:
        infra.close()
    print()
    print(table(results))
    return 0 if all(r.survived and r.identical for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
