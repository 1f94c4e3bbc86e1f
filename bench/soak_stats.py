"""The pure part of ``bench/soak.py``: least-squares slopes and growth verdicts.

A soak samples, every few seconds, series such as a process's resident memory, its
open file descriptors, database connections, queue depths and sandbox containers.
After a warm-up (the first half of the soak), each series is judged on what is left:

- **memory** (:attr:`Kind.MEMORY`, MB): growth when the least-squares slope exceeds
  both an absolute rate (20 MB/h) and a share of the series' mean an hour (10 %/h):
  a small process doubling and a big one creeping both count, allocator noise does not;
- **counts** (file descriptors, connections, containers, queue depths): growth when the
  floor rises, the smallest value of the window's last third above the smallest of its
  first third by more than an allowance, with a positive slope too. A leaked descriptor
  or connection never goes away, so the floor climbs; a busy moment raises only peaks.

Nothing here does I/O; ``tests/unit/test_soak_stats.py`` covers it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

SECONDS_PER_HOUR = 3600.0


class Kind(Enum):
    """How a series is judged (see the module's docstring)."""

    MEMORY = "memory"
    COUNT = "count"


@dataclass(frozen=True)
class Rule:
    """A series kind's thresholds: ``slope_per_hour`` and ``share_per_hour`` (of the mean)
    for memory, ``allowance`` (of the floor's rise) for counts."""

    kind: Kind
    slope_per_hour: float = 0.0
    share_per_hour: float = 0.0
    allowance: float = 0.0


#: Resident memory in MB: growth past 20 MB/h and 10 % of the mean an hour.
MEMORY = Rule(Kind.MEMORY, slope_per_hour=20.0, share_per_hour=0.10)
#: Open file descriptors of one process.
FDS = Rule(Kind.COUNT, allowance=8.0)
#: Database or broker connections (of one process, or in all).
CONNECTIONS = Rule(Kind.COUNT, allowance=2.0)
#: Sandbox containers on the Docker host (running or stopped).
CONTAINERS = Rule(Kind.COUNT, allowance=3.0)
#: Messages waiting in a work queue: a backlog comes and goes with the load.
WORK_QUEUE = Rule(Kind.COUNT, allowance=50.0)
#: Messages in a dead-letter queue: any new one is a failure.
DEAD_QUEUE = Rule(Kind.COUNT, allowance=0.0)


@dataclass(frozen=True)
class Judgement:
    """One series over the analysis window: its figures and the verdict.

    ``slope_per_hour`` is the least-squares slope (units an hour), ``share_per_hour``
    that slope over the mean (``nan`` for a zero mean), ``rise`` the floor's rise (last
    third's minimum minus the first third's), ``verdict`` ``ok``, ``GROWTH`` or ``-``
    (too few samples to judge)."""

    samples: int
    mean: float
    first: float
    last: float
    low: float
    high: float
    slope_per_hour: float
    share_per_hour: float
    rise: float
    verdict: str

    @property
    def growth(self) -> bool:
        """Whether the verdict is growth."""
        return self.verdict == "GROWTH"


def slope(times_s: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of ``values`` against ``times_s`` (units a second); 0.0
    with fewer than two distinct times."""
    if len(times_s) != len(values):
        raise ValueError(f"{len(times_s)} times but {len(values)} values")
    n = len(times_s)
    if n < 2:
        return 0.0
    mean_t = math.fsum(times_s) / n
    mean_v = math.fsum(values) / n
    spread = math.fsum((t - mean_t) ** 2 for t in times_s)
    if spread == 0.0:
        return 0.0
    return math.fsum((t - mean_t) * (v - mean_v) for t, v in zip(times_s, values, strict=True)) / (
        spread
    )


def slope_per_hour(times_s: Sequence[float], values: Sequence[float]) -> float:
    """:func:`slope` in units an hour."""
    return slope(times_s, values) * SECONDS_PER_HOUR


def floor_rise(values: Sequence[float]) -> float:
    """How far the floor rose: the minimum of the last third of ``values`` minus the
    minimum of the first third (0.0 with fewer than three values)."""
    third = len(values) // 3
    if third == 0:
        return 0.0
    return min(values[-third:]) - min(values[:third])


def window(
    times_s: Sequence[float], values: Sequence[float], start_s: float
) -> tuple[list[float], list[float]]:
    """The samples at or after ``start_s``."""
    kept = [(t, v) for t, v in zip(times_s, values, strict=True) if t >= start_s]
    return [t for t, _ in kept], [v for _, v in kept]


def judge(
    times_s: Sequence[float], values: Sequence[float], rule: Rule, min_samples: int = 6
) -> Judgement:
    """Judge one series (already cut to its analysis window) by ``rule``.

    With fewer than ``min_samples`` samples the figures are given but the verdict is
    ``-``."""
    n = len(values)
    if n == 0:
        nan = float("nan")
        return Judgement(0, nan, nan, nan, nan, nan, nan, nan, nan, "-")
    per_hour = slope_per_hour(times_s, values)
    mean = math.fsum(values) / n
    share = per_hour / mean if mean else float("nan")
    rise = floor_rise(values)
    if n < min_samples:
        verdict = "-"
    elif rule.kind is Kind.MEMORY:
        grows = per_hour > rule.slope_per_hour and mean > 0 and share > rule.share_per_hour
        verdict = "GROWTH" if grows else "ok"
    else:
        hours = (times_s[-1] - times_s[0]) / SECONDS_PER_HOUR
        grows = rise > rule.allowance and per_hour > 0 and per_hour * hours > rule.allowance
        verdict = "GROWTH" if grows else "ok"
    return Judgement(
        samples=n,
        mean=mean,
        first=values[0],
        last=values[-1],
        low=min(values),
        high=max(values),
        slope_per_hour=per_hour,
        share_per_hour=share,
        rise=rise,
        verdict=verdict,
    )


def covers(times_s: Sequence[float], start_s: float, end_s: float, share: float = 0.8) -> bool:
    """Whether samples at ``times_s`` span at least ``share`` of ``start_s..end_s`` (a
    process that started or stopped inside the window does not)."""
    if not times_s or end_s <= start_s:
        return False
    return (times_s[-1] - times_s[0]) >= share * (end_s - start_s)
