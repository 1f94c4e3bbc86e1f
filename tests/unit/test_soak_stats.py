"""The soak's slopes and growth verdicts (bench/soak_stats.py)."""

from __future__ import annotations

import math

import pytest

from bench.soak_stats import (
    CONNECTIONS,
    DEAD_QUEUE,
    FDS,
    MEMORY,
    WORK_QUEUE,
    covers,
    floor_rise,
    judge,
    slope,
    slope_per_hour,
    window,
)

MINUTES = [60.0 * i for i in range(16)]  # a quarter of an hour, one sample a minute


def test_slope_of_a_line_is_exact() -> None:
    times = [0.0, 10.0, 20.0, 30.0]
    assert slope(times, [5.0 + 2.0 * t for t in times]) == pytest.approx(2.0)
    assert slope_per_hour(times, [1.0 - t for t in times]) == pytest.approx(-3600.0)


def test_slope_of_noise_around_a_flat_line_is_zero() -> None:
    times = [float(t) for t in range(8)]
    assert slope(times, [1.0, 3.0] * 4) == pytest.approx(0.0, abs=0.3)
    assert slope(times, [7.0] * 8) == 0.0


def test_slope_degenerate_inputs() -> None:
    assert slope([], []) == 0.0
    assert slope([1.0], [5.0]) == 0.0
    assert slope([2.0, 2.0], [1.0, 9.0]) == 0.0
    with pytest.raises(ValueError):
        slope([1.0, 2.0], [1.0])


def test_floor_rise_ignores_peaks() -> None:
    assert floor_rise([10, 30, 10, 40, 10, 30]) == 0.0
    assert floor_rise([10, 12, 11, 20, 21, 22]) == 11.0
    assert floor_rise([3.0, 4.0]) == 0.0


def test_window_keeps_the_samples_after_the_start() -> None:
    assert window([0.0, 1.0, 2.0, 3.0], [5.0, 6.0, 7.0, 8.0], 2.0) == ([2.0, 3.0], [7.0, 8.0])


def test_memory_growth_needs_both_the_rate_and_the_share() -> None:
    # 40 MB/h on 100 MB: 40 %/h -> growth
    leak = judge(MINUTES, [100.0 + 40.0 * t / 3600 for t in MINUTES], MEMORY)
    assert leak.growth
    assert leak.slope_per_hour == pytest.approx(40.0)
    # 40 MB/h on 2 GB: 2 %/h -> not growth
    big = judge(MINUTES, [2000.0 + 40.0 * t / 3600 for t in MINUTES], MEMORY)
    assert big.verdict == "ok"
    # 5 MB/h on 20 MB: 25 %/h but under 20 MB/h -> not growth
    small = judge(MINUTES, [20.0 + 5.0 * t / 3600 for t in MINUTES], MEMORY)
    assert small.verdict == "ok"
    assert small.share_per_hour == pytest.approx(5.0 / small.mean)


def test_memory_that_falls_or_is_flat_is_ok() -> None:
    assert judge(MINUTES, [300.0 - t / 60 for t in MINUTES], MEMORY).verdict == "ok"
    assert judge(MINUTES, [300.0, 320.0] * 8, MEMORY).verdict == "ok"


def test_a_leaking_count_raises_its_floor() -> None:
    # one descriptor a minute under a busy/idle pattern: the floor climbs by 12
    fds = [40.0 + i + (6 if i % 2 else 0) for i in range(16)]
    judged = judge(MINUTES, fds, FDS)
    assert judged.growth
    assert judged.rise == 12.0


def test_busy_peaks_are_not_growth() -> None:
    fds = [40.0, 70.0, 41.0, 80.0, 40.0, 75.0] * 2 + [40.0, 90.0, 41.0, 40.0]
    assert judge(MINUTES, fds, FDS).verdict == "ok"


def test_a_count_within_its_allowance_is_ok() -> None:
    connections = [5.0] * 8 + [7.0] * 8  # +2: the allowance, not beyond it
    assert judge(MINUTES, connections, CONNECTIONS).verdict == "ok"
    assert judge(MINUTES, [5.0] * 8 + [8.0] * 8, CONNECTIONS).growth


def test_any_new_dead_letter_is_growth_but_a_backlog_is_not() -> None:
    assert judge(MINUTES, [0.0] * 10 + [1.0] * 6, DEAD_QUEUE).growth
    assert judge(MINUTES, [0.0] * 16, DEAD_QUEUE).verdict == "ok"
    backlog = [0.0, 120.0, 30.0, 0.0] * 4
    assert judge(MINUTES, backlog, WORK_QUEUE).verdict == "ok"


def test_too_few_samples_give_no_verdict() -> None:
    judged = judge([0.0, 60.0, 120.0], [1.0, 50.0, 100.0], FDS)
    assert judged.verdict == "-"
    assert judged.samples == 3
    assert judged.slope_per_hour == pytest.approx(99.0 * 30)
    empty = judge([], [], MEMORY)
    assert empty.verdict == "-"
    assert math.isnan(empty.mean)


def test_zero_mean_has_no_share() -> None:
    judged = judge(MINUTES, [0.0] * 16, WORK_QUEUE)
    assert math.isnan(judged.share_per_hour)
    assert judged.verdict == "ok"


def test_covers_needs_most_of_the_window() -> None:
    assert covers([100.0, 150.0, 190.0], 100.0, 200.0)
    assert not covers([150.0, 200.0], 100.0, 200.0)
    assert not covers([], 100.0, 200.0)
    assert not covers([1.0], 5.0, 5.0)
