"""``coderm simulate-allocation``: every test allocation replayed in rounds on a
finished run's full matrix (:mod:`shared.core.allocation_rounds`), as tables, JSON and
the accuracy-against-budget figure (the CodeRM paper's Figure 6); the report
(:mod:`services.cli.report`) shows the same section.

The command is a thin shell: parsing the options, building the tables and the JSON are
pure functions here, the simulation is the core's, and the run is loaded by
:func:`shared.db.sample_order.load_ordered_problems`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import plots, render, store
from services.cli.blocks import Block, Image, Para, Table
from services.cli.errors import UserError
from shared.core.allocation_rounds import (
    ALLOCATIONS,
    ROUND_BUDGETS,
    SIM_STRATEGIES,
    Allocation,
    OrderedProblem,
    SimPoint,
    simulate,
)
from shared.core.analysis import STRATEGY_LABELS
from shared.db.sample_order import load_ordered_problems
from shared.enums import RunState

DEFAULT_DRAWS = 20
"""Draws (seeded generation orders of the test samples) of ``simulate-allocation``."""

REPORT_DRAWS = 3
"""Draws the report's allocation section uses, so that a report stays quick on a large
run; its caption says so and points at ``simulate-allocation`` for more."""

Z95 = 1.96
"""Error bars: +- 1.96 standard errors over draws (a 95% normal interval)."""

PLOT_STEM = "allocation_rounds"
"""The figure's file stem: ``plots/allocation_rounds.png`` in a report, and
``allocation_rounds.png`` in ``simulate-allocation --out``."""


class SimulateFormat(StrEnum):
    """What ``coderm simulate-allocation`` prints."""

    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class AllocationSim:
    """A finished simulation: what it ran on, how, and one :class:`SimPoint` an
    allocation and budget (allocations in the order asked, ``equal`` first)."""

    run_id: str
    problems: int
    max_tests: int
    draws: int
    seed: int
    first_round: int
    per_doubling: int
    budgets: tuple[int, ...]
    allocations: tuple[str, ...]
    points: tuple[SimPoint, ...]


# ------------------------------------------------------------------ options


def parse_budgets(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``: positive integers, sorted, without repeats;
    :class:`UserError` otherwise."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise UserError(f"--budgets takes positive integers such as 1,2,4: {text!r}") from error
    if not values or min(values) < 1:
        raise UserError(f"--budgets takes positive integers such as 1,2,4: {text!r}")
    return tuple(sorted(set(values)))


def parse_allocations(text: str | None) -> dict[str, Allocation]:
    """The allocations asked for by name (every one for ``None``), ``equal`` first and
    always included (the baseline of the paired differences); :class:`UserError` for
    an unknown name."""
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(ALLOCATIONS)
    unknown = [n for n in names if n not in ALLOCATIONS]
    if unknown:
        raise UserError(f"unknown allocation {', '.join(unknown)}; known: {', '.join(ALLOCATIONS)}")
    ordered = ["equal", *dict.fromkeys(n for n in names if n != "equal")]
    return {n: ALLOCATIONS[n] for n in ordered}


# ------------------------------------------------------------------ simulation


def run_simulation(
    run_id: str,
    problems: Sequence[OrderedProblem],
    allocations: Mapping[str, Allocation],
    budgets: Sequence[int] = ROUND_BUDGETS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    first_round: int = 1,
    per_doubling: int = 4,
) -> AllocationSim:
    """Simulate every allocation on ``problems`` (the run's labelled problems with
    their test samples' order) and keep the settings beside the points."""
    if not problems:
        raise UserError(f"run {run_id} has no labelled problem to simulate")
    points = simulate(problems, allocations, budgets, first_round, draws, seed, per_doubling)
    return AllocationSim(
        run_id=run_id,
        problems=len(problems),
        max_tests=max(len(p.sample_tests) for p in problems),
        draws=draws,
        seed=seed,
        first_round=first_round,
        per_doubling=per_doubling,
        budgets=tuple(sorted(set(budgets))),
        allocations=tuple(allocations),
        points=tuple(points),
    )


async def load_simulation_input(
    sessions: async_sessionmaker[AsyncSession], run_prefix: str
) -> tuple[str, list[OrderedProblem]]:
    """A finished, labelled run's id and its ordered problems; :class:`UserError` for
    an unknown, unfinished or unlabelled run."""
    async with sessions() as session:
        run = await store.find_run(session, run_prefix)
        if run.state != RunState.FINISHED.value:
            raise UserError(
                f"run {run.id} is {run.state}: the simulation needs a finished run's full matrix"
            )
        problems = await load_ordered_problems(session, run)
    if not problems:
        raise UserError(f"run {run.id} has no labelled problem: no accuracy to simulate")
    return str(run.id), problems


# ------------------------------------------------------------------ tables and JSON


def cell(point: SimPoint, strategy: int) -> str:
    """``accuracy±error bar`` in percent (error bar: :data:`Z95` standard errors over
    draws), one word, so that a terminal table splits rather than folds it."""
    return f"{point.accuracy[strategy]:.2f}±{Z95 * point.stderr[strategy]:.2f}"


def budget_header(budget: float) -> str:
    """A budget column's header: ``B=4`` (average test samples a problem)."""
    return f"B={budget:g}"


def sim_caption(sim: AllocationSim, strategy: int) -> str:
    """A strategy table's caption: what the cells are and how they were drawn."""
    label = STRATEGY_LABELS.get(SIM_STRATEGIES[strategy], SIM_STRATEGIES[strategy])
    beyond = (
        f"; budgets above {sim.max_tests} (the most test samples a problem has) repeat the "
        "full matrix"
        if max(sim.budgets) > sim.max_tests
        else ""
    )
    return (
        f"{label}: best-of-N accuracy (%) ± {Z95} standard errors over {sim.draws} draws "
        f"(seed {sim.seed}), {sim.problems} problems; B = average test samples a problem"
        f"{beyond}"
    )


def sim_tables(sim: AllocationSim) -> list[Table]:
    """One table a strategy (:data:`SIM_STRATEGIES`): a row an allocation, a column a
    budget, cells :func:`cell`."""
    at = {(p.allocation, p.budget): p for p in sim.points}
    budgets = sorted({p.budget for p in sim.points})
    return [
        Table(
            ["allocation", *(budget_header(b) for b in budgets)],
            [[name, *(cell(at[(name, b)], s) for b in budgets)] for name in sim.allocations],
            sim_caption(sim, s),
        )
        for s in range(len(SIM_STRATEGIES))
    ]


def _point_dict(point: SimPoint) -> dict[str, Any]:
    return {
        "allocation": point.allocation,
        "budget": point.budget,
        "tests": point.tests,
        "draws": point.draws,
        "strategies": {
            name: {
                "accuracy": point.accuracy[s],
                "stderr": point.stderr[s],
                "error_bar": Z95 * point.stderr[s],
                "delta_vs_equal": point.delta[s],
                "delta_stderr": point.delta_stderr[s],
                "delta_stderr_problems": point.delta_stderr_problems[s],
            }
            for s, name in enumerate(SIM_STRATEGIES)
        },
    }


def sim_dict(sim: AllocationSim) -> dict[str, Any]:
    """Every figure of the simulation as JSON-ready data: the settings, then one entry
    an allocation and budget with, per strategy, accuracy (%), its standard error and
    error bar, and the paired difference against ``equal`` (points) with its standard
    errors over draws and over problems; ``tests``: the mean test samples a problem
    actually revealed."""
    return {
        "run": sim.run_id,
        "problems": sim.problems,
        "max_tests": sim.max_tests,
        "draws": sim.draws,
        "seed": sim.seed,
        "first_round": sim.first_round,
        "per_doubling": sim.per_doubling,
        "error_bar_z": Z95,
        "budgets": list(sim.budgets),
        "allocations": list(sim.allocations),
        "strategies": list(SIM_STRATEGIES),
        "points": [_point_dict(p) for p in sim.points],
    }


def sim_json(sim: AllocationSim) -> str:
    """:func:`sim_dict` as indented JSON."""
    return json.dumps(sim_dict(sim), indent=2, allow_nan=False)


def summary_line(sim: AllocationSim) -> str:
    """One line on what was simulated."""
    return (
        f"run {sim.run_id}: {sim.problems} problems, {len(sim.allocations)} allocations, "
        f"{sim.draws} draws (seed {sim.seed}), first round {sim.first_round} test "
        f"sample{'s' if sim.first_round != 1 else ''} a problem, budget doubling in about "
        f"{sim.per_doubling} rounds"
    )


def sim_blocks(sim: AllocationSim, note: str = "") -> list[Block]:
    """The simulation as report blocks: what it is, the figure, the tables."""
    text = (
        "Test samples are revealed in rounds, each problem's in a seeded random order "
        "(one draw), and each allocation decides after every round which problems get "
        "the next ones; accuracy is read when the spent budget reaches B test samples a "
        f"problem on average. {summary_line(sim)}."
    )
    return [
        Para(text + (f" Note: {note}." if note else "")),
        Image(PLOT_STEM, figure_caption(sim) + (f" ({note})" if note else "")),
        *sim_tables(sim),
    ]


def figure_caption(sim: AllocationSim) -> str:
    """The figure's caption."""
    return (
        "best-of-N accuracy against the average test budget a problem for every "
        f"allocation, ± {Z95} standard errors over {sim.draws} draws"
    )


def sim_plot(sim: AllocationSim) -> bytes:
    """The figure as PNG (:func:`services.cli.plots.allocation_rounds_plot`)."""
    return plots.allocation_rounds_plot(sim.points, Z95, figure_caption(sim))


# ------------------------------------------------------------------ the command


def emit_simulation(
    console: Console, sim: AllocationSim, output: SimulateFormat, out: Path | None
) -> None:
    """Write the figure (and the JSON) into ``out`` when given, and print ``output``:
    the tables fitted to the console's width, or the JSON."""
    written: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        figure = out / f"{PLOT_STEM}.png"
        figure.write_bytes(sim_plot(sim))
        data = out / f"{PLOT_STEM}.json"
        data.write_text(sim_json(sim) + "\n", encoding="utf-8")
        written = [figure, data]
    where = "written: " + ", ".join(str(p.resolve()) for p in written) if written else ""
    if output is SimulateFormat.JSON:
        print(sim_json(sim))
        if where:
            Console(stderr=True).print(where)
        return
    console.print(summary_line(sim))
    for strategy, table in zip(SIM_STRATEGIES, sim_tables(sim), strict=True):
        console.print(Text(STRATEGY_LABELS.get(strategy, strategy), style="bold"))
        console.print(render.FittedTable(table))
    if where:
        console.print(where)
