"""The OK/FAIL verdicts of ``make reproduce-codet`` against CodeT's published figures."""

from __future__ import annotations

import pytest

from bench.reproduce_codet import PUBLISHED, checks, information, table

#: The figures of the full run in docs/BENCHMARKS.md.
MEASURED = {
    "vanilla.pass@1": 22.115853658536587,
    "vanilla.pass@10": 50.3794143518197,
    "vanilla.pass@100": 73.78048780487805,
    "codet.pass@1": 37.24251798747206,
    "codet.pass@2": 45.157274858332144,
    "codet.pass@10": 60.02335312138995,
}


def _verdicts(metrics: dict[str, float], full: bool = True) -> dict[str, str]:
    return {row.name: row.verdict for row in checks(metrics, full)}


def test_the_measured_full_run_is_within_every_tolerance() -> None:
    verdicts = _verdicts(MEASURED)
    assert verdicts == {
        "vanilla.pass@1": "OK",
        "vanilla.pass@10": "-",
        "vanilla.pass@100": "-",
        "codet.pass@1": "OK",
        "codet.pass@2": "-",
        "codet.pass@10": "OK",
    }
    delta = {row.name: row.delta for row in checks(MEASURED, True)}
    assert delta["codet.pass@1"] == pytest.approx(0.4825, abs=1e-4)


@pytest.mark.parametrize(
    ("name", "value", "verdict"),
    [
        ("vanilla.pass@1", 22.12 + 0.29, "OK"),
        ("vanilla.pass@1", 22.12 - 0.31, "FAIL"),
        ("codet.pass@1", 36.76 + 0.51, "FAIL"),
        ("codet.pass@10", 59.36 - 0.99, "OK"),
        ("codet.pass@10", 59.36 + 1.01, "FAIL"),
    ],
)
def test_tolerances_bound_the_delta(name: str, value: float, verdict: str) -> None:
    assert _verdicts({**PUBLISHED, name: value})[name] == verdict


def test_a_missing_figure_fails_and_a_subset_gets_no_verdict() -> None:
    missing = {k: v for k, v in PUBLISHED.items() if k != "codet.pass@10"}
    assert _verdicts(missing)["codet.pass@10"] == "FAIL"
    assert set(_verdicts(MEASURED, full=False).values()) == {"-"}
    text = table(checks(MEASURED, True))
    assert "CodeT pass@1" in text and "+0.48" in text and "OK" in text


def test_mbr_exec_is_printed_for_information_only() -> None:
    (line,) = information({**MEASURED, "mbr_exec.pass@1": 31.234})
    assert line.startswith("MBR-Exec pass@1") and "31.23" in line and "information" in line
    assert "OK" not in line and "FAIL" not in line
    assert "mbr_exec.pass@1" not in PUBLISHED  # never part of the verdict
    assert {row.name for row in checks({**MEASURED, "mbr_exec.pass@1": 0.0}, True)} == set(
        PUBLISHED
    )
    (missing,) = information(MEASURED)
    assert " - " in missing
