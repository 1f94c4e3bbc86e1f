"""PNG plots of a run analysis (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from shared.core.allocation_rounds import SIM_STRATEGIES, SimPoint
from shared.core.analysis import STRATEGY_LABELS, RunAnalysis
from shared.core.analysis_types import ALL_PROBLEMS

REFERENCE_STYLE = {"vanilla": ":", "oracle": "--"}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _label(strategy: str) -> str:
    return STRATEGY_LABELS.get(strategy, strategy)


def strategies_plot(analysis: RunAnalysis) -> bytes:
    """pass@1 per strategy as bars, the vanilla and oracle bounds as lines."""
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.45 * len(analysis.strategies)))
    rows = [r for r in analysis.strategies if r.role == "selection"]
    axes.barh([r.label for r in rows], [r.metrics.get("pass@1", 0.0) for r in rows])
    for row in analysis.strategies:
        if row.role != "selection" and "pass@1" in row.metrics:
            value = row.metrics["pass@1"]
            style = REFERENCE_STYLE.get(row.strategy, "-")
            axes.axvline(value, linestyle=style, color="grey", label=f"{row.label} {value:.2f}")
    for i, row in enumerate(rows):
        value = row.metrics.get("pass@1", 0.0)
        axes.text(value, i, f" {value:.2f}", va="center")
    axes.set_xlabel("pass@1 (%)")
    axes.set_xlim(0, 100)
    axes.invert_yaxis()
    axes.legend(loc="lower right", fontsize="small")
    return _png(figure)


def _series(points: Sequence[dict[str, Any]], bucket: str) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        if point["bucket"] == bucket:
            series[point["strategy"]].append(point)
    return {name: sorted(items, key=lambda p: p["size"]) for name, items in series.items()}


def _draw_curves(axes: Any, points: Sequence[dict[str, Any]], bucket: str, legend: bool) -> None:
    for strategy, items in sorted(_series(points, bucket).items()):
        sizes = [p["size"] for p in items]
        values = [100 * p["accuracy"] for p in items]
        spread = [100 * p["stdev"] for p in items]
        line = axes.plot(
            sizes,
            values,
            marker="o",
            markersize=3,
            linestyle=REFERENCE_STYLE.get(strategy, "-"),
            label=_label(strategy),
        )[0]
        if any(spread):
            axes.fill_between(
                sizes,
                [v - s for v, s in zip(values, spread, strict=True)],
                [v + s for v, s in zip(values, spread, strict=True)],
                color=line.get_color(),
                alpha=0.15,
            )
    axes.set_xscale("log")
    ticks = sorted({p["size"] for p in points})
    axes.set_xticks(ticks, [str(t) for t in ticks], fontsize="small")
    axes.minorticks_off()
    axes.set_ylim(0, 100)
    axes.grid(True, alpha=0.3)
    if legend:
        axes.legend(fontsize="small")


def curve_plot(points: Sequence[dict[str, Any]], axis: str) -> bytes:
    """Accuracy of each strategy as the number of tests (or solutions) grows."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    _draw_curves(axes, points, ALL_PROBLEMS, legend=True)
    axes.set_xlabel(f"number of {axis} (log scale)")
    axes.set_ylabel("best-of-N accuracy (%)")
    axes.set_title(f"scaling with {axis}, all problems")
    return _png(figure)


def bucket_curve_plot(points: Sequence[dict[str, Any]], axis: str) -> bytes:
    """The same curves in one panel per pass-rate decile."""
    buckets = sorted({p["bucket"] for p in points if p["bucket"] != ALL_PROBLEMS})
    cols = min(5, max(1, len(buckets)))
    rows = (len(buckets) + cols - 1) // cols or 1
    figure, grid = plt.subplots(
        rows,
        cols,
        figsize=(3.2 * cols, 2.8 * rows + 0.8),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for i, axes in enumerate(grid.flat):
        if i >= len(buckets):
            axes.set_visible(False)
            continue
        bucket = buckets[i]
        _draw_curves(axes, points, bucket, legend=False)
        count = max((p["problems"] for p in points if p["bucket"] == bucket), default=0)
        axes.set_title(f"pass rate {bucket}: {count} problems", fontsize="small")
        axes.set_xlabel(axis, fontsize="small")
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="small")
    figure.suptitle(f"scaling with {axis} per difficulty decile (accuracy %)")
    return _png(figure)


def difficulty_plot(analysis: RunAnalysis) -> bytes:
    """Problems per pass-rate decile, and each strategy's mean score in each."""
    by_bucket: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row in analysis.problem_rows:
        by_bucket[row.bucket].append(row.scores)
    buckets = sorted(by_bucket)
    strategies = [r.strategy for r in analysis.strategies]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    top.bar(range(len(buckets)), [len(by_bucket[b]) for b in buckets], color="grey")
    top.set_ylabel("problems")
    width = 0.8 / max(1, len(strategies))
    for j, strategy in enumerate(strategies):
        means = [
            100 * sum(s.get(strategy, 0.0) for s in by_bucket[b]) / len(by_bucket[b])
            for b in buckets
        ]
        bottom.bar(
            [i + (j - (len(strategies) - 1) / 2) * width for i in range(len(buckets))],
            means,
            width=width,
            label=_label(strategy),
        )
    bottom.set_xticks(range(len(buckets)), buckets, rotation=30, fontsize="small")
    bottom.set_xlabel("vanilla pass rate of the problem")
    bottom.set_ylabel("mean expected correctness (%)")
    bottom.set_ylim(0, 100)
    bottom.legend(fontsize="small", ncol=2)
    return _png(figure)


def allocation_plot(points: Sequence[dict[str, Any]]) -> bytes:
    """Accuracy vs total test budget for each allocation rule."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        by_rule[point["rule"]].append(point)
    for rule, items in sorted(by_rule.items()):
        items.sort(key=lambda p: p["per_problem"])
        axes.plot(
            [p["per_problem"] for p in items],
            [100 * p["accuracy"] for p in items],
            marker="o",
            label=rule,
        )
    axes.set_xscale("log")
    ticks = sorted({p["per_problem"] for p in points})
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.minorticks_off()
    axes.set_xlabel("test budget per problem (log scale)")
    axes.set_ylabel("majority-voting accuracy (%)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _png(figure)


def allocation_rounds_plot(points: Sequence[SimPoint], z: float, title: str = "") -> bytes:
    """Best-of-N accuracy against the average test budget a problem (log2 axis): a
    line with error bars (+- ``z`` standard errors over draws) an allocation, a panel
    a strategy (:data:`SIM_STRATEGIES`); the CodeRM paper's Figure 6 for the
    round-based simulation."""
    by_rule: dict[str, list[SimPoint]] = defaultdict(list)
    for point in points:
        by_rule[point.allocation].append(point)
    budgets = sorted({p.budget for p in points})
    figure, grid = plt.subplots(
        1,
        len(SIM_STRATEGIES),
        figsize=(5.2 * len(SIM_STRATEGIES), 4.6),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    # each allocation's points nudged sideways (in log2 units) so error bars stay apart
    nudge = {rule: 0.15 * (2 * k / max(1, len(by_rule) - 1) - 1) for k, rule in enumerate(by_rule)}
    for s, axes in enumerate(grid.flat):
        for rule, items in by_rule.items():
            items = sorted(items, key=lambda p: p.budget)
            axes.errorbar(
                [p.budget * 2 ** nudge[rule] for p in items],
                [p.accuracy[s] for p in items],
                yerr=[z * p.stderr[s] for p in items],
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1.8 if rule == "equal" else 1.1,
                linestyle="--" if rule == "equal" else "-",
                color="black" if rule == "equal" else None,
                label=rule,
            )
        axes.set_xscale("log", base=2)
        axes.set_xticks(budgets, [f"{b:g}" for b in budgets], fontsize="small")
        axes.minorticks_off()
        axes.grid(True, alpha=0.3)
        axes.set_title(_label(SIM_STRATEGIES[s]), fontsize="medium")
        axes.set_xlabel("average test samples a problem (log2 scale)")
    grid.flat[0].set_ylabel("best-of-N accuracy (%)")
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="outside lower center", ncol=min(len(labels), 9), fontsize="small"
    )
    if title:
        figure.suptitle(title, fontsize="medium")
    return _png(figure)


def all_plots(analysis: RunAnalysis) -> dict[str, bytes]:
    """Every plot the analysis has data for, by file stem."""
    plots: dict[str, bytes] = {}
    if analysis.strategies:
        plots["strategies"] = strategies_plot(analysis)
        plots["difficulty"] = difficulty_plot(analysis)
    for axis, points in (("tests", analysis.tests_curve), ("solutions", analysis.solutions_curve)):
        if points:
            plots[f"{axis}_curve"] = curve_plot(points, axis)
            plots[f"{axis}_curve_buckets"] = bucket_curve_plot(points, axis)
    if analysis.allocation_curve:
        plots["allocation"] = allocation_plot(analysis.allocation_curve)
    return plots
