"""``coderm dashboard``: one static HTML page with the trend of every suite.

Per suite and member (benchmark): each strategy's pass@1 across checkpoints with a 95%
band, unit-test quality across checkpoints, the execution throughput of each run, and
the latest verdicts; the page is self-contained (inline CSS, plots as PNG data URIs,
as ``coderm report`` writes them) and ``--serve`` serves its folder over HTTP.

Everything is read through the SQL views (docs/SQL.md): ``v_suite_members``,
``v_checkpoint_evaluations``, ``v_checkpoint_verdicts`` (migration 0007) and
``v_problem_difficulty``, ``v_test_quality_run``, ``v_throughput`` (migration 0004), so
a Grafana or Superset board built on the same queries shows the same numbers.

The band of a run's pass@1 is the percentile bootstrap over its problems, computed by
:func:`shared.core.significance.interval` against a run that scores 0 everywhere: the
paired bootstrap of ``A - 0`` resamples A's problems exactly as ``coderm compare`` does
(same seed, resamples and level), so its interval is the interval of A's mean.
"""

from __future__ import annotations

import functools
import io
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import matplotlib

matplotlib.use("Agg")

import typer
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import blocks
from services.cli.blocks import Block, Heading, Image, Para, Table, fmt
from services.cli.errors import UserError
from services.cli.shell import console, with_sessions
from shared.core.analysis import STRATEGY_LABELS, strategy_order
from shared.core.significance import DEFAULT_BOOTSTRAP, Bootstrap, interval

DEFAULT_OUT = Path("reports") / "dashboard"
QUALITY = ("accuracy", "precision", "recall", "far", "frr")
REFERENCE_STYLE = {"vanilla": ":", "oracle": "--"}


@dataclass(frozen=True)
class Band:
    """A run's pass@1 of one strategy (percent) with its bootstrap interval."""

    value: float | None
    low: float | None
    high: float | None


@dataclass
class Point:
    """One checkpoint's evaluation of one member, with its run's figures."""

    row: dict[str, Any]
    strategies: dict[str, Band] = field(default_factory=dict)
    quality: dict[str, float | None] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuitePage:
    """A suite's members and, per member, its evaluations in checkpoint order."""

    name: str
    headline: str
    gates: list[str]
    members: list[dict[str, Any]]
    points: dict[str, list[Point]]
    verdicts: dict[int, list[dict[str, Any]]]


def band(strategy: str, values: Sequence[float], spec: Bootstrap = DEFAULT_BOOTSTRAP) -> Band:
    """pass@1 (the mean of ``values``, percent) with the percentile bootstrap interval
    of the mean over problems (see the module docstring)."""
    if not values:
        return Band(None, None, None)
    found = interval(f"{strategy}.pass@1", list(values), [0.0] * len(values), spec)
    return Band(found.a, found.low, found.high)


def strategy_bands(
    scores: Sequence[Mapping[str, float]], spec: Bootstrap = DEFAULT_BOOTSTRAP
) -> dict[str, Band]:
    """Per strategy, the band of its per-problem expected correctness (fractions, as
    ``v_problem_difficulty.scores`` holds them) over the problems that have it."""
    names = sorted({s for problem in scores for s in problem}, key=strategy_order)
    return {
        s: band(s, [100.0 * float(p[s]) for p in scores if p.get(s) is not None], spec)
        for s in names
    }


async def _rows(session: AsyncSession, sql: str, **params: Any) -> list[dict[str, Any]]:
    result = await session.execute(text(sql), params)
    return [dict(row) for row in result.mappings()]


async def load_suite_page(
    session: AsyncSession, suite: dict[str, Any], spec: Bootstrap = DEFAULT_BOOTSTRAP
) -> SuitePage:
    """Everything the page shows of one suite, through the views."""
    name = suite["suite"]
    members = await _rows(
        session, "SELECT * FROM v_suite_members WHERE suite = :suite ORDER BY position", suite=name
    )
    evaluations = await _rows(
        session,
        "SELECT * FROM v_checkpoint_evaluations WHERE suite = :suite ORDER BY position, sequence",
        suite=name,
    )
    runs = [e["run_id"] for e in evaluations if e["run_id"] is not None]
    scores: dict[uuid.UUID, list[dict[str, float]]] = defaultdict(list)
    for row in await _rows(
        session,
        "SELECT run_id, task_id, scores FROM v_problem_difficulty "
        "WHERE run_id = ANY(:runs) AND pass_rate IS NOT NULL AND scores IS NOT NULL "
        "ORDER BY run_id, task_id",
        runs=runs,
    ):
        scores[row["run_id"]].append(row["scores"])
    quality = {
        row["run_id"]: row
        for row in await _rows(
            session,
            "SELECT run_id, accuracy, precision, recall, far, frr FROM v_test_quality_run "
            "WHERE run_id = ANY(:runs)",
            runs=runs,
        )
    }
    throughput = {
        row["run_id"]: row
        for row in await _rows(
            session,
            "SELECT run_id, executed, pairs, wall_seconds, executed_per_s FROM v_throughput "
            "WHERE run_id = ANY(:runs)",
            runs=runs,
        )
    }
    points: dict[str, list[Point]] = defaultdict(list)
    for row in evaluations:
        run = row["run_id"]
        finished = run is not None and row["run_state"] == "finished"
        points[row["member"]].append(
            Point(
                row=row,
                strategies=strategy_bands(scores.get(run, []), spec) if finished else {},
                quality={
                    k: None if quality.get(run, {}).get(k) is None else 100 * quality[run][k]
                    for k in QUALITY
                },
                throughput=throughput.get(run, {}),
            )
        )
    latest = [p[-1].row["evaluation_id"] for p in _latest_evaluated(points).values()]
    verdict_rows = await _rows(
        session,
        "SELECT * FROM v_checkpoint_verdicts WHERE evaluation_id = ANY(:ids) "
        "ORDER BY evaluation_id, against DESC, metric",
        ids=latest,
    )
    verdicts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in verdict_rows:
        verdicts[row["evaluation_id"]].append(row)
    return SuitePage(
        name=name,
        headline=suite["headline"],
        gates=list(suite["gates"] or []),
        members=members,
        points=dict(points),
        verdicts=dict(verdicts),
    )


def _latest_evaluated(points: Mapping[str, list[Point]]) -> dict[str, list[Point]]:
    out = {}
    for member, items in points.items():
        done = [p for p in items if p.row["state"] == "evaluated"]
        if done:
            out[member] = done
    return out


async def load_pages(
    sessions: async_sessionmaker[AsyncSession], suite: str | None
) -> list[SuitePage]:
    """Every suite (or the one named), in name order; :class:`UserError` for an
    unknown suite."""
    async with sessions() as session:
        suites = await _rows(
            session,
            "SELECT DISTINCT suite, headline, gates FROM v_suite_members "
            "WHERE (CAST(:suite AS text) IS NULL OR suite = :suite) ORDER BY suite",
            suite=suite,
        )
        if suite is not None and not suites:
            raise UserError(f"no suite {suite!r} with members (coderm suite list)")
        pages = []
        for row in suites:
            pages.append(await load_suite_page(session, row))
        return pages


# --- plots ------------------------------------------------------------------------------


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _checkpoint_axis(axes: Any, points: Sequence[Point]) -> list[int]:
    xs = list(range(len(points)))
    axes.set_xticks(xs, [str(p.row["checkpoint"]) for p in points], rotation=20, ha="right")
    axes.set_xlabel("checkpoint")
    axes.grid(True, alpha=0.3)
    return xs


def strategies_png(title: str, points: Sequence[Point]) -> bytes:
    """pass@1 of each strategy across checkpoints, with its 95% band."""
    figure, axes = plt.subplots(figsize=(8, 4.2))
    xs = _checkpoint_axis(axes, points)
    names = sorted({s for p in points for s in p.strategies}, key=strategy_order)
    for strategy in names:
        bands = [p.strategies.get(strategy, Band(None, None, None)) for p in points]
        values = [float("nan") if b.value is None else b.value for b in bands]
        line = axes.plot(
            xs,
            values,
            marker="o",
            linewidth=2,
            linestyle=REFERENCE_STYLE.get(strategy, "-"),
            label=STRATEGY_LABELS.get(strategy, strategy),
        )[0]
        axes.fill_between(
            xs,
            [float("nan") if b.low is None else b.low for b in bands],
            [float("nan") if b.high is None else b.high for b in bands],
            color=line.get_color(),
            alpha=0.15,
        )
    axes.set_ylim(-2, 102)
    axes.set_ylabel("pass@1 (%), 95% band over problems")
    axes.set_title(title)
    if names:
        axes.legend(fontsize="small", loc="best")
    return _png(figure)


def quality_png(title: str, points: Sequence[Point]) -> bytes:
    """The run's unit tests as classifiers (v_test_quality_run, micro) across checkpoints."""
    figure, axes = plt.subplots(figsize=(8, 3.6))
    xs = _checkpoint_axis(axes, points)
    for name in QUALITY:
        values = [p.quality.get(name) for p in points]
        axes.plot(
            xs,
            [float("nan") if v is None else v for v in values],
            marker="s",
            linewidth=2,
            label=name + (" (lower is better)" if name in ("far", "frr") else ""),
        )
    if all(v is None for p in points for v in p.quality.values()):
        axes.text(0.5, 0.5, "no unit tests extracted", transform=axes.transAxes, ha="center")
    axes.set_ylim(-2, 102)
    axes.set_ylabel("percent")
    axes.set_title(title)
    axes.legend(fontsize="small", loc="best")
    return _png(figure)


def throughput_png(title: str, page: SuitePage) -> bytes:
    """Executed pairs per second of wall time of each run, a line per member."""
    figure, axes = plt.subplots(figsize=(8, 3.6))
    longest = max(page.points.values(), key=len, default=[])
    _checkpoint_axis(axes, longest)
    order = {str(p.row["checkpoint"]): i for i, p in enumerate(longest)}
    for member, points in page.points.items():
        xs = [order.get(str(p.row["checkpoint"]), i) for i, p in enumerate(points)]
        values = [p.throughput.get("executed_per_s") for p in points]
        axes.plot(xs, [float("nan") if v is None else v for v in values], marker="o", label=member)
    axes.set_ylabel("executed pairs / s (wall)")
    axes.set_ylim(bottom=0)
    axes.set_title(title)
    axes.legend(fontsize="small", loc="best")
    return _png(figure)


# --- the page ---------------------------------------------------------------------------


def _verdict_text(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["low"] is None or row["high"] is None:
        return f"{row['baseline_checkpoint']}: no interval"
    return (
        f"{row['baseline_checkpoint']}: {row['verdict']} {row['delta']:+.2f} "
        f"[{row['low']:+.2f}, {row['high']:+.2f}]"
    )


def verdicts_table(page: SuitePage) -> Table:
    """The latest evaluated checkpoint of each member against the previous and the best
    on the headline metric, its regressions and the hook."""
    rows = []
    for member, points in _latest_evaluated(page.points).items():
        latest = points[-1].row
        found = {
            (v["against"], v["metric"]): v for v in page.verdicts.get(latest["evaluation_id"], [])
        }
        regressions = latest["regressions"] or 0
        rows.append(
            [
                member,
                str(latest["checkpoint"]),
                fmt(latest["headline_value"]),
                _verdict_text(found.get(("previous", page.headline))),
                _verdict_text(found.get(("best", page.headline))),
                f"{regressions} ({latest['hook_state'] or 'no hook'})" if regressions else "none",
            ]
        )
    return Table(
        ["member", "checkpoint", page.headline, "vs previous", "vs best", "regressions"],
        rows,
        f"latest verdicts on {page.headline}: A - B in points, 95% paired bootstrap interval "
        f"(A the checkpoint); gates {', '.join(page.gates) or '-'}",
    )


def evaluations_table(page: SuitePage) -> Table:
    """Every evaluation of the suite."""
    rows = [
        [
            str(p.row["sequence"]),
            str(p.row["checkpoint"]),
            member,
            str(p.row["run_id"] or "-")[:8],
            p.row["state"],
            fmt(p.row["headline_value"]),
            p.row["verdict_previous"] or "-",
            p.row["verdict_best"] or "-",
            str(p.row["regressions"] or 0),
        ]
        for member, points in page.points.items()
        for p in points
    ]
    return Table(
        [
            "#",
            "checkpoint",
            "member",
            "run",
            "state",
            page.headline,
            "vs previous",
            "vs best",
            "regressions",
        ],
        rows,
        "every checkpoint evaluation (v_checkpoint_evaluations)",
    )


def page_blocks(pages: Sequence[SuitePage], generated: str) -> tuple[list[Block], dict[str, bytes]]:
    """The page's blocks and the plots they show."""
    out: list[Block] = [
        Heading("coderm dashboard", 1),
        Para(
            f'Generated {generated} from the SQL views (docs/SQL.md, "Continuous evaluation"). '
            "pass@1 bands: 95% percentile bootstrap over each run's problems."
        ),
    ]
    pngs: dict[str, bytes] = {}
    if not pages:
        out.append(Para("No suites yet: `coderm suite add`, then `coderm watch DIR --suite NAME`."))
    for i, page in enumerate(pages):
        out.append(Heading(f"Suite {page.name}", 2))
        members = ", ".join(
            f"{m['member']} ({m['benchmark']}, tests {m['test_model']}, {m['n']} x {m['m']}, "
            f"{m['profile']})"
            for m in page.members
        )
        out.append(
            Para(
                f"Members: {members}. Headline `{page.headline}` picks the best checkpoint so far."
            )
        )
        out.append(Heading("Latest verdicts", 3))
        out.append(verdicts_table(page))
        for j, member in enumerate(m["member"] for m in page.members):
            points = page.points.get(member, [])
            if not points:
                continue
            benchmark = points[0].row["benchmark"]
            out.append(Heading(f"{member} ({benchmark}): pass@1 by strategy", 3))
            pngs[f"s{i}-m{j}-pass"] = strategies_png(f"{page.name} / {member}", points)
            out.append(Image(f"s{i}-m{j}-pass", f"{member}: pass@1 by strategy across checkpoints"))
            out.append(Heading(f"{member} ({benchmark}): unit-test quality", 3))
            pngs[f"s{i}-m{j}-quality"] = quality_png(f"{page.name} / {member}: tests", points)
            out.append(
                Image(f"s{i}-m{j}-quality", f"{member}: unit-test quality across checkpoints")
            )
        if page.points:
            out.append(Heading("Throughput", 3))
            pngs[f"s{i}-throughput"] = throughput_png(f"{page.name}: throughput", page)
            out.append(Image(f"s{i}-throughput", "executed pairs per second of each run"))
        out.append(Heading("Checkpoint evaluations", 3))
        out.append(evaluations_table(page))
    return out, pngs


def render(pages: Sequence[SuitePage], generated: str | None = None) -> str:
    """The page as self-contained HTML."""
    stamp = generated or datetime.now(UTC).isoformat(timespec="seconds")
    items, pngs = page_blocks(pages, stamp)
    return blocks.to_html(items, pngs, "coderm dashboard")


def write_dashboard(out: Path, suite: str | None) -> Path:
    """Read the views, write ``out/index.html``; return its path."""
    pages = with_sessions(lambda sessions: load_pages(sessions, suite))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    temporary = out / "index.html.tmp"
    temporary.write_text(render(pages), encoding="utf-8")
    temporary.replace(path)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(directory: Path, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``directory`` over HTTP from a daemon thread; the server (``server_address``
    says the port when 0 was asked for)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def dashboard(
    suite: Annotated[
        str | None, typer.Option(help="only this suite [default: every suite]")
    ] = None,
    out: Annotated[Path, typer.Option(help="directory of index.html")] = DEFAULT_OUT,
    serve_page: Annotated[
        bool, typer.Option("--serve", help="serve the directory over HTTP until interrupted")
    ] = False,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on (0: any free one)", min=0)] = 8765,
    refresh: Annotated[
        float, typer.Option(help="with --serve: rewrite the page every S seconds (0: never)", min=0)
    ] = 0.0,
) -> None:
    """Write a static HTML page of every suite's trend (pass@1 by strategy with bands,
    unit-test quality, throughput, latest verdicts); --serve serves it."""
    path = write_dashboard(out, suite)
    console.print(f"wrote {path}")
    if not serve_page:
        return
    try:
        server = serve(out, host, port)
    except OSError as error:
        console.print(f"[red]error:[/red] cannot serve on {host}:{port}: {error}")
        raise typer.Exit(2) from error
    bound_host, bound_port = server.server_address[:2]
    console.print(f"serving http://{bound_host!s}:{bound_port}/ (Ctrl-C to stop)", highlight=False)
    try:
        while True:
            time.sleep(refresh or 3600.0)
            if refresh:
                write_dashboard(out, suite)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
