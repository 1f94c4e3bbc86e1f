"""``coderm compare RUN_A RUN_B``: two runs (e.g. two checkpoints) side by side.

Problems are matched by task id and only the problems both runs scored with ground
truth are compared (the output says how many). For every strategy: the pass@k table
of both runs on those problems with deltas, and per problem wins, losses and ties of
A against B by the expected correctness of each run's pick.

Every delta (each strategy's pass@k, the unit-test quality figures) comes with a
paired bootstrap interval over the common problems and a verdict at a stated level
(:mod:`shared.core.significance`); ``--fail-on-regression METRIC[:THRESHOLD]`` turns a
significant loss of A against B into exit code 1 (A is the candidate, B the baseline).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import store
from services.cli.blocks import Table as Block
from services.cli.blocks import fmt
from services.cli.errors import UserError
from services.cli.render import FittedTable
from services.cli.report_data import RunData, RunInfo, load_run_data
from shared.core.analysis import (
    ProblemRow,
    analyse_run,
    strategy_order,
)
from shared.core.analysis_types import ProblemMatrix
from shared.core.significance import DEFAULT_BOOTSTRAP as DEFAULT_BOOTSTRAP
from shared.core.significance import (
    QUALITY_CLASSIFIERS,
    Bootstrap,
    Interval,
    compare_significance,
    regressed,
)

EPSILON = 1e-9
RECORD_COLUMNS = (
    "strategy",
    "A better",
    "B better",
    "ties",
    "A right, B wrong",
    "B right, A wrong",
    "mean A - B",
)


@dataclass(frozen=True)
class MetricDelta:
    """One strategy's metric in both runs (percent) and ``delta = a - b``."""

    strategy: str
    metric: str
    a: float | None
    b: float | None
    delta: float | None


@dataclass(frozen=True)
class ProblemDelta:
    """One problem's expected correctness of each run's pick."""

    task_id: str
    a: float
    b: float
    delta: float


@dataclass(frozen=True)
class Outcome:
    """Per-problem record of A against B for one strategy.

    ``wins``/``losses``/``ties``: problems where A's pick has a higher / lower / equal
    expected correctness; ``only_a``/``only_b``: problems A's pick surely solves and
    B's surely does not (scores 1 and 0), and the reverse; ``mean_delta`` the mean of
    ``a - b`` (a fraction, 100x the pass@1 delta); ``changed``: the problems
    that are not ties, largest difference first.
    """

    strategy: str
    wins: int
    losses: int
    ties: int
    only_a: int
    only_b: int
    mean_delta: float
    changed: list[ProblemDelta]


@dataclass(frozen=True)
class Comparison:
    """Two runs compared on the problems both scored with ground truth.

    ``significance``: one interval a metric both runs define (strategies' pass@k, then
    the unit-test quality figures), computed as ``bootstrap`` says.
    """

    run_a: RunInfo
    run_b: RunInfo
    common: int
    only_in_a: list[str]
    only_in_b: list[str]
    table: list[MetricDelta]
    outcomes: list[Outcome]
    bootstrap: Bootstrap
    significance: list[Interval]


def _subset(data: RunData, task_ids: set[str]) -> list[ProblemMatrix]:
    return [p for p in data.problems if p.task_id in task_ids]


def _table(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> list[MetricDelta]:
    out = []
    for strategy in sorted(a.keys() | b.keys(), key=strategy_order):
        metrics = a.get(strategy, {}).keys() | b.get(strategy, {}).keys()
        for metric in sorted(metrics, key=lambda m: int(m.partition("@")[2] or 0)):
            va, vb = a.get(strategy, {}).get(metric), b.get(strategy, {}).get(metric)
            delta = None if va is None or vb is None else va - vb
            out.append(MetricDelta(strategy, metric, va, vb, delta))
    return out


def _outcome(strategy: str, rows_a: Sequence[ProblemRow], rows_b: dict[str, ProblemRow]) -> Outcome:
    deltas = []
    for row in rows_a:
        other = rows_b[row.task_id]
        if strategy in row.scores and strategy in other.scores:
            a, b = row.scores[strategy], other.scores[strategy]
            deltas.append(ProblemDelta(row.task_id, a, b, a - b))
    changed = sorted(
        (d for d in deltas if abs(d.delta) > EPSILON), key=lambda d: (-abs(d.delta), d.task_id)
    )
    return Outcome(
        strategy=strategy,
        wins=sum(1 for d in deltas if d.delta > EPSILON),
        losses=sum(1 for d in deltas if d.delta < -EPSILON),
        ties=sum(1 for d in deltas if abs(d.delta) <= EPSILON),
        only_a=sum(1 for d in deltas if d.a == 1.0 and d.b == 0.0),
        only_b=sum(1 for d in deltas if d.a == 0.0 and d.b == 1.0),
        mean_delta=sum(d.delta for d in deltas) / len(deltas) if deltas else 0.0,
        changed=changed,
    )


def compare_runs(a: RunData, b: RunData, spec: Bootstrap = DEFAULT_BOOTSTRAP) -> Comparison:
    """Compare two loaded runs on the labelled problems they share (pure), with a
    bootstrap interval for every metric both define."""
    tasks_a = {p.task_id for p in a.problems}
    tasks_b = {p.task_id for p in b.problems}
    common = tasks_a & tasks_b
    analysis_a = analyse_run(_subset(a, common), curves=False)
    analysis_b = analyse_run(_subset(b, common), curves=False)
    rows_b = {row.task_id: row for row in analysis_b.problem_rows}
    strategies = sorted(
        {
            s
            for row in analysis_a.problem_rows[:1] + analysis_b.problem_rows[:1]
            for s in row.scores
        },
        key=strategy_order,
    )
    return Comparison(
        run_a=a.info,
        run_b=b.info,
        common=len(common),
        only_in_a=sorted(tasks_a - common),
        only_in_b=sorted(tasks_b - common),
        table=_table(
            {r.strategy: r.metrics for r in analysis_a.strategies},
            {r.strategy: r.metrics for r in analysis_b.strategies},
        ),
        outcomes=[_outcome(s, analysis_a.problem_rows, rows_b) for s in strategies],
        bootstrap=spec,
        significance=compare_significance(_subset(a, common), _subset(b, common), spec),
    )


class CompareFormat(StrEnum):
    """What ``coderm compare`` prints."""

    TABLE = "table"
    JSON = "json"


async def load_comparison(
    sessions: async_sessionmaker[AsyncSession],
    run_a: str,
    run_b: str,
    spec: Bootstrap = DEFAULT_BOOTSTRAP,
) -> Comparison:
    """Load two runs (ids or unique prefixes) and compare them."""
    async with sessions() as session:
        data = [
            await load_run_data(session, await store.find_run(session, prefix))
            for prefix in (run_a, run_b)
        ]
    return compare_runs(data[0], data[1], spec)


def bootstrap_spec(level: float, resamples: int, seed: int, inner: int = 0) -> Bootstrap:
    """The bootstrap asked for on the command line; :class:`UserError` when a value is
    out of range (``--level`` is a fraction such as 0.95, not a percent)."""
    try:
        return Bootstrap(level=level, resamples=resamples, seed=seed, inner=inner)
    except ValueError as error:
        raise UserError(f"--level, --resamples, --seed, --inner: {error}") from error


@dataclass(frozen=True)
class Gate:
    """``--fail-on-regression METRIC[:THRESHOLD]``: fail when A is significantly worse
    than B on ``metric`` by more than ``threshold`` percentage points."""

    metric: str
    threshold: float = 0.0


def parse_gates(texts: Sequence[str]) -> list[Gate]:
    """``["codet.pass@1", "vanilla.pass@1:2.5"]`` -> gates; :class:`UserError` for a
    threshold that is not a non-negative number. Metric names are checked against the
    comparison later (:func:`check_gates`)."""
    gates = []
    for text in texts:
        metric, colon, threshold = text.strip().rpartition(":")
        if not colon:
            metric, threshold = threshold, "0"
        try:
            value = float(threshold)
        except ValueError as error:
            raise UserError(
                f"--fail-on-regression takes METRIC[:THRESHOLD], e.g. codet.pass@1:1.5: {text!r}"
            ) from error
        if not metric or not value >= 0.0 or value == float("inf"):
            raise UserError(
                "--fail-on-regression takes METRIC[:THRESHOLD] with a threshold of 0 or more "
                f"percentage points: {text!r}"
            )
        gates.append(Gate(metric, value))
    return gates


def check_gates(comparison: Comparison, gates: Sequence[Gate]) -> list[str]:
    """One message a gate whose metric regressed (empty: every gate passes).

    :class:`UserError` for a metric the comparison does not have (the message lists the
    ones it has) or whose interval is undefined (no resample defines it).
    """
    by_name = {i.metric: i for i in comparison.significance}
    failures = []
    for gate in gates:
        found = by_name.get(gate.metric)
        if found is None:
            raise UserError(
                f"--fail-on-regression: unknown metric {gate.metric!r} for these runs; "
                f"known: {', '.join(by_name) or 'none (no common problems)'}"
            )
        if found.low is None or found.high is None or found.delta is None:
            raise UserError(
                f"--fail-on-regression: {gate.metric} has no interval for these runs "
                "(undefined on every problem of a run)"
            )
        if regressed(found, gate.threshold):
            bound, side = (
                (found.high, f"below -{gate.threshold:g}")
                if found.higher_is_better
                else (found.low, f"above +{gate.threshold:g} (lower is better)")
            )
            failures.append(
                f"regression: {gate.metric} is significantly worse in A than in B: "
                f"A - B = {found.delta:+.2f} points, {100 * found.level:g}% interval "
                f"[{found.low:+.2f}, {found.high:+.2f}] ({bound:+.2f} lies {side})"
            )
    return failures


def to_json(comparison: Comparison) -> str:
    """The comparison as JSON (every changed problem included)."""
    return json.dumps(dataclasses.asdict(comparison), indent=2, allow_nan=False)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _describe(label: str, run: RunInfo) -> Text:
    return Text(
        f"{label}: {run.run_id[:8]} {run.name or ''} ({run.benchmark}, policy {run.policy}, "
        f"tests {run.test_model}, {run.n_solutions} x {run.n_tests}, {run.state})"
    )


def _interval_cell(found: Interval | None) -> str:
    if found is None or found.low is None or found.high is None:
        return "-"
    return f"[{found.low:+.2f}, {found.high:+.2f}]"


def _how(c: Comparison) -> str:
    spec = c.bootstrap
    inner = f", {spec.inner} re-scored copies a problem" if spec.inner else ""
    return (
        f"A - B in points; {100 * spec.level:g}% paired bootstrap interval over the "
        f"{c.common} common problems ({spec.resamples} resamples, seed {spec.seed}{inner})"
    )


def _row(name: str, a: float | None, b: float | None, found: Interval | None) -> list[str]:
    delta = None if a is None or b is None else a - b
    verdict = "-" if found is None or found.verdict is None else found.verdict
    return [name, fmt(a), fmt(b), _signed(delta), _interval_cell(found), verdict]


def significance_tables(c: Comparison) -> list[Block]:
    """The strategies' pass@k and the unit-test quality figures of both runs, each
    with its delta, interval and verdict (a metric's name is what
    ``--fail-on-regression`` takes)."""
    headers = ["metric", "A", "B", "A - B", f"{100 * c.bootstrap.level:g}% interval", "verdict"]
    by_name = {i.metric: i for i in c.significance}
    strategies = [
        _row(f"{r.strategy}.{r.metric}", r.a, r.b, by_name.get(f"{r.strategy}.{r.metric}"))
        for r in c.table
    ]
    quality = [
        _row(i.metric, i.a, i.b, i)
        for i in c.significance
        if i.metric.partition(".")[0] in QUALITY_CLASSIFIERS
    ]
    tables = [Block(headers, strategies, f"strategies, percent; {_how(c)}")]
    if quality:
        caption = (
            "unit-test quality, macro over problems, percent (individual tests; majority "
            "voting as classifier); far: lower is better"
        )
        tables.append(Block(headers, quality, caption))
    return tables


def to_terminal(comparison: Comparison, top: int = 10) -> RenderableType:
    """Both runs' tables with deltas, intervals and verdicts, the per-problem record,
    the largest changes; the tables fit the console's width."""
    c = comparison
    items: list[RenderableType] = [_describe("A", c.run_a), _describe("B", c.run_b)]
    items.append(
        Text(
            f"{c.common} problems in common (scored with ground truth by both); "
            f"{len(c.only_in_a)} only in A, {len(c.only_in_b)} only in B"
        )
    )
    items += [FittedTable(t) for t in significance_tables(c)]
    record = Block(
        list(RECORD_COLUMNS),
        [
            [
                o.strategy,
                str(o.wins),
                str(o.losses),
                str(o.ties),
                str(o.only_a),
                str(o.only_b),
                _signed(100 * o.mean_delta),
            ]
            for o in c.outcomes
        ],
        "per problem, by expected correctness of the pick",
    )
    items.append(FittedTable(record))
    changes = Table(title=f"largest per-problem differences (first {top} a strategy)")
    for column in ("strategy", "task", "A", "B", "A - B"):
        changes.add_column(column, justify="left" if column in ("strategy", "task") else "right")
    for o in c.outcomes:
        if o.strategy in ("vanilla", "oracle"):
            continue
        for d in o.changed[:top]:
            changes.add_row(o.strategy, d.task_id, fmt(d.a), fmt(d.b), _signed(d.delta))
    items.append(changes)
    return Group(*items)


def emit_comparison(console: Console, comparison: Comparison, output: CompareFormat) -> None:
    """Print the comparison as tables or JSON."""
    if output is CompareFormat.JSON:
        print(to_json(comparison))
    else:
        console.print(to_terminal(comparison))
