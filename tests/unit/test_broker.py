"""The broker's retry rules (shared/broker.py): back-off schedule, attempt counting and
the names of the delay queues."""

from __future__ import annotations

import pytest

from shared.broker import (
    ATTEMPT_HEADER,
    MAX_ATTEMPTS,
    REASON_HEADER,
    RETRY_STEPS,
    WORK_KINDS,
    Topology,
    attempt_of,
    copy_headers,
    retry_delay_s,
)
from shared.settings import BrokerSettings


def test_default_schedule_is_seconds_doubling_per_attempt() -> None:
    settings = BrokerSettings()
    delays = [
        retry_delay_s(attempt, settings.retry_delay_s, settings.retry_max_delay_s)
        for attempt in RETRY_STEPS
    ]
    assert delays == [2.0, 4.0, 8.0, 16.0]
    assert list(RETRY_STEPS) == list(range(1, MAX_ATTEMPTS))


@pytest.mark.parametrize(
    ("first_s", "max_s", "expected"),
    [
        (0.2, 30.0, [0.2, 0.4, 0.8, 1.6]),
        (10.0, 30.0, [10.0, 20.0, 30.0, 30.0]),
        (5.0, 5.0, [5.0, 5.0, 5.0, 5.0]),
    ],
)
def test_schedule_is_exponential_and_bounded(
    first_s: float, max_s: float, expected: list[float]
) -> None:
    assert [retry_delay_s(a, first_s, max_s) for a in RETRY_STEPS] == expected


def test_schedule_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_s(0, 2.0, 30.0)


def test_settings_refuse_a_non_positive_delay() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        BrokerSettings(retry_delay_s=0)


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [({}, 1), ({ATTEMPT_HEADER: 3}, 3), ({ATTEMPT_HEADER: "4"}, 4), ({ATTEMPT_HEADER: "x"}, 1)],
)
def test_attempt_of_reads_the_header(headers: dict[str, object], attempt: int) -> None:
    assert attempt_of(headers) == attempt


def test_copies_drop_rabbitmqs_dead_lettering_record() -> None:
    delivered = {
        "x-death": [{"count": 1, "queue": "coderm.execute.retry.1", "reason": "expired"}],
        "x-first-death-queue": "coderm.execute.retry.1",
        "x-first-death-reason": "expired",
        "x-first-death-exchange": "coderm.retry",
        "x-last-death-queue": "coderm.execute.retry.1",
        ATTEMPT_HEADER: 2,
        REASON_HEADER: "RuntimeError: first",
        "x-custom": "kept",
    }
    copied = copy_headers(delivered, **{ATTEMPT_HEADER: 3, REASON_HEADER: "RuntimeError: again"})
    assert copied == {
        ATTEMPT_HEADER: 3,
        REASON_HEADER: "RuntimeError: again",
        "x-custom": "kept",
    }


def test_delay_queue_names() -> None:
    topology = Topology("coderm")
    assert topology.retry_exchange == "coderm.retry"
    assert topology.retry_queue("execute", 1) == "coderm.execute.retry.1"
    assert topology.retry_route("execute", 1) == "execute.1"
    queues = topology.queues()
    assert len(queues) == len(set(queues)) == len(WORK_KINDS) * (2 + len(RETRY_STEPS))
    assert {"coderm.execute", "coderm.execute.dead", "coderm.execute.retry.4"} <= set(queues)
    assert topology.exchanges() == ["coderm", "coderm.dlx", "coderm.retry"]
