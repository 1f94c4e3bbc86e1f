"""Runs with a test budget through the running services, against the simulation.

Submits, through the real ``coderm run`` and the services ``make up`` started, one run a
(allocation, budget) on the CodeT HumanEval set (policy and test model ``codegen16b``,
100 solution samples a problem, at most 100 test samples, CodeT's 0.1 s asserts: the
settings of ``make reproduce-codet``, whose verdicts are then cached), each with
``--test-budget`` = budget x problems. It waits for each, then prints per run the
rounds, the wall time, the final best-of-N figures (CodeRM majority voting and CodeT),
``equal``'s figure at the same budget beside it (the baseline, ratio and difference),
and what :func:`shared.core.allocation_rounds.simulate_draw` predicts for the same
budget when the test samples are revealed in their generation order (``draw=None``),
on the finished 100 x 100 run's full matrices: a live run must match it exactly.

    make reproduce-codet            # once: the full matrices and a warm verdict cache
    .venv/bin/python -m bench.rounds_live [--budgets 2,4,8] [--allocations equal,scarce]
        [--first-round 1] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bench.allocation_sim import load_problems
from shared.core.allocation_rounds import ALLOCATIONS, simulate_draw
from shared.db.models import Run, RunMetric, RunRound
from shared.db.session import make_engine, make_sessionmaker
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("coderm_majority.pass@1", "codet.pass@1")


@dataclass(frozen=True)
class LiveRun:
    """A finished live run: its id, rounds, seconds from submit to finished and figures."""

    run_id: str
    rounds: int
    seconds: float
    figures: tuple[float, float]


def submit(allocation: str, total: int, first_round: int) -> str:
    """``coderm run ... --test-budget total --detach``; the run id it printed."""
    args = [
        sys.executable,
        "-c",
        "from services.cli.app import main; main()",
        "run",
        "--benchmark",
        "humaneval",
        "--policy",
        "codegen16b",
        "--test-model",
        "codegen16b",
        "--n",
        "100",
        "--m",
        "100",
        "--test-budget",
        str(total),
        "--first-round",
        str(first_round),
        "--allocation",
        allocation,
        "--name",
        f"rounds-{allocation}-{total}",
        "--detach",
    ]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for word in out.split():
        try:
            return str(uuid.UUID(word))
        except ValueError:
            continue
    raise SystemExit(f"no run id in {out!r}")


async def wait(run_id: str, limit_s: float) -> LiveRun:
    """Poll the run until it is finished; its rounds and figures."""
    engine = make_engine(ServiceSettings().database)
    started = time.monotonic()
    try:
        sessions = make_sessionmaker(engine)
        while True:
            async with sessions() as session:
                run = await session.get(Run, uuid.UUID(run_id))
                assert run is not None
                if run.state == "finished":
                    break
                if run.state == "failed" or time.monotonic() - started > limit_s:
                    raise SystemExit(f"run {run_id} {run.state}: {run.error}")
            await asyncio.sleep(1.0)
        seconds = (run.finished_at - run.created_at).total_seconds() if run.finished_at else 0.0
        async with sessions() as session:
            rounds = len(
                list(await session.scalars(select(RunRound.round).where(RunRound.run_id == run.id)))
            )
            values = dict(
                (
                    await session.execute(
                        select(RunMetric.name, RunMetric.value).where(RunMetric.run_id == run.id)
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    return LiveRun(run_id, rounds, seconds, (values[FIGURES[0]], values[FIGURES[1]]))


def main() -> None:
    """Submit the runs one after the other and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="2,4,8", help="average test samples a problem")
    parser.add_argument("--allocations", default="equal,scarce")
    parser.add_argument("--first-round", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--run", default=None, help="the full 100 x 100 run to simulate on")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    names = ["equal", *(n for n in args.allocations.split(",") if n != "equal")]
    full_run, problems = asyncio.run(load_problems(args.run))
    count = len(problems)
    print(f"simulation on run {full_run[:8]} ({count} problems, generation order)")
    print(
        "| tests a problem | allocation | rounds | wall s | majority live | majority sim"
        " | CodeT live | CodeT sim | CodeT vs equal |"
    )
    print("| ---" * 9 + " |")
    for budget in budgets:
        base: LiveRun | None = None
        for name in names:
            live = asyncio.run(wait(submit(name, budget * count, args.first_round), args.timeout))
            (sim,) = simulate_draw(
                problems, ALLOCATIONS[name], [budget], args.first_round, draw=None
            )
            predicted = tuple(100 * a for a in sim.accuracy)
            base = base or live
            ratio = live.figures[1] / base.figures[1] if base.figures[1] else float("nan")
            print(
                f"| {budget} | {name} | {live.rounds} | {live.seconds:.0f}"
                f" | {live.figures[0]:.2f} | {predicted[0]:.2f}"
                f" | {live.figures[1]:.2f} | {predicted[1]:.2f}"
                f" | {ratio:.3f} ({live.figures[1] - base.figures[1]:+.2f}) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
