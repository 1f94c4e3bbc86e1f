"""Dynamic unit-test scaling, simulated in rounds on the CodeT HumanEval set.

Loads a finished run's full matrices (default: the latest finished ``humaneval`` run
of ``codegen16b`` with 100 x 100, i.e. what ``make reproduce-codet`` leaves; the
matrices and the generation order of its test samples through
:func:`shared.db.sample_order.load_ordered_problems`, as ``coderm simulate-allocation``
loads them), runs :func:`shared.core.allocation_rounds.simulate` for every allocation
at average budgets 1, 2, 4, ..., 64 test samples a problem, and prints per strategy the
accuracy with its standard error over draws and the paired difference against
``equal`` (standard error over draws, and over problems).

    .venv/bin/python -m bench.allocation_sim [--run PREFIX] [--draws 20] [--seed 0]
        [--first-round 1] [--per-doubling 4] [--only NAME,...] [--save FILE | --load FILE]

``--save`` writes the loaded matrices to a JSON file and ``--load`` reads them back
instead of the database (for repeated runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.allocation_rounds import (
    ALLOCATIONS,
    ROUND_BUDGETS,
    SIM_STRATEGIES,
    OrderedProblem,
    SimPoint,
    simulate,
)
from shared.core.analysis_types import ProblemMatrix
from shared.core.strategies import Candidate
from shared.db.models import Benchmark, Run
from shared.db.sample_order import load_ordered_problems
from shared.db.session import make_engine, make_sessionmaker
from shared.settings import ServiceSettings


async def _find_run(session: AsyncSession, prefix: str | None) -> Run:
    query = select(Run).where(Run.state == "finished")
    if prefix:
        query = query.where(cast(Run.id, String).like(f"{prefix}%"))
    else:
        query = query.join(Benchmark, Benchmark.id == Run.benchmark_id).where(
            Benchmark.name == "humaneval",
            Run.n_solutions == 100,
            Run.n_tests == 100,
            ~Run.config.has_key("budget"),  # a run with a test budget has no full matrix
        )
    runs = list(await session.scalars(query.order_by(Run.created_at.desc()).limit(2)))
    if not runs or (prefix and len(runs) > 1):
        raise SystemExit(f"no unique finished run matches {prefix or 'the CodeT HumanEval set'}")
    return runs[0]


async def load_problems(prefix: str | None) -> tuple[str, list[OrderedProblem]]:
    """The run's id and its labelled problems in benchmark order, with their test
    samples' generation order (:func:`shared.db.sample_order.load_ordered_problems`,
    the loader ``coderm simulate-allocation`` uses)."""
    engine = make_engine(ServiceSettings().database)
    try:
        async with make_sessionmaker(engine)() as session:
            run = await _find_run(session, prefix)
            problems = await load_ordered_problems(session, run)
    finally:
        await engine.dispose()
    return str(run.id), problems


def dump(run_id: str, problems: Sequence[OrderedProblem]) -> dict[str, Any]:
    """The problems as JSON."""
    return {
        "run": run_id,
        "problems": [
            {
                "problem_id": p.matrix.problem_id,
                "task_id": p.matrix.task_id,
                "candidates": [
                    [c.solution_id, sorted(c.passed), c.correct] for c in p.matrix.candidates
                ],
                "sample_tests": [list(s) for s in p.sample_tests],
            }
            for p in problems
        ],
    }


def undump(data: dict[str, Any]) -> tuple[str, list[OrderedProblem]]:
    """The inverse of :func:`dump`."""
    out = []
    for p in data["problems"]:
        weights: dict[int, int] = defaultdict(int)
        for sample in p["sample_tests"]:
            for t in sample:
                weights[t] += 1
        matrix = ProblemMatrix(
            problem_id=p["problem_id"],
            task_id=p["task_id"],
            candidates=tuple(
                Candidate(sid, frozenset(passed), bool(ok)) for sid, passed, ok in p["candidates"]
            ),
            test_weights=dict(weights),
            test_samples=len(p["sample_tests"]),
        )
        out.append(OrderedProblem(matrix, tuple(tuple(s) for s in p["sample_tests"])))
    return str(data["run"]), out


def table(points: Sequence[SimPoint], strategy: int) -> str:
    """One strategy's table: a row a budget, a column an allocation. ``equal``'s cell:
    accuracy ± 1.96 SE over draws; the others': accuracy, then in brackets the ratio
    to ``equal`` and the paired difference in points ± 1.96 SE over draws / over
    problems."""
    names = list(dict.fromkeys(p.allocation for p in points))
    budgets = sorted({p.budget for p in points})
    at = {(p.allocation, p.budget): p for p in points}
    lines = [
        "| tests a problem | " + " | ".join(names) + " |",
        "| ---" + " | ---" * len(names) + " |",
    ]
    for b in budgets:
        cells = [f"{b:g}"]
        base = at[("equal", b)].accuracy[strategy]
        for n in names:
            p = at[(n, b)]
            if n == "equal":
                cells.append(f"{p.accuracy[strategy]:.2f} ± {1.96 * p.stderr[strategy]:.2f}")
                continue
            ratio = p.accuracy[strategy] / base if base else float("nan")
            cells.append(
                f"{p.accuracy[strategy]:.2f} ({ratio:.3f}; {p.delta[strategy]:+.2f} "
                f"± {1.96 * p.delta_stderr[strategy]:.2f} / "
                f"{1.96 * p.delta_stderr_problems[strategy]:.2f})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    """Load, simulate, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run id or prefix [latest finished CodeT HumanEval run]")
    parser.add_argument("--draws", type=int, default=20, help="bootstrap draws [20]")
    parser.add_argument("--seed", type=int, default=0, help="seed [0]")
    parser.add_argument("--first-round", type=int, default=1, help="M0 [1]")
    parser.add_argument("--per-doubling", type=int, default=4, help="rounds a doubling [4]")
    parser.add_argument("--only", help="comma-separated allocations (equal is always run)")
    parser.add_argument("--save", type=Path, help="write the loaded matrices to FILE")
    parser.add_argument("--load", type=Path, help="read matrices from FILE, not the database")
    options = parser.parse_args()
    if options.load:
        run_id, problems = undump(json.loads(options.load.read_text(encoding="utf-8")))
    else:
        run_id, problems = asyncio.run(load_problems(options.run))
    if options.save:
        options.save.write_text(json.dumps(dump(run_id, problems)), encoding="utf-8")
    names = ["equal"] + [
        n for n in (options.only.split(",") if options.only else ALLOCATIONS) if n != "equal"
    ]
    allocations = {n: ALLOCATIONS[n] for n in names}
    started = time.perf_counter()
    points = simulate(
        problems,
        allocations,
        ROUND_BUDGETS,
        options.first_round,
        options.draws,
        options.seed,
        options.per_doubling,
    )
    elapsed = time.perf_counter() - started
    print(
        f"run {run_id}: {len(problems)} problems, {options.draws} draws, seed {options.seed}, "
        f"first round {options.first_round}, {options.per_doubling} rounds a doubling; "
        f"{elapsed:.0f} s"
    )
    for s, strategy in enumerate(SIM_STRATEGIES):
        print(f"\n{strategy} best-of-N accuracy (%), ± 1.96 standard errors")
        print(table(points, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
