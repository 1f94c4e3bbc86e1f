"""The pure rules of watch suites: member specs, the best checkpoint so far, regressions
read from stored verdicts, and the dashboard's bands and page."""

from __future__ import annotations

import dataclasses

import pytest

from services.cli.compare import Gate
from services.cli.dashboard import Band, Point, SuitePage, band, render, strategy_bands
from services.cli.suites import (
    Evaluated,
    MemberSpec,
    SuiteError,
    best_of,
    check_members,
    check_metric,
    find_regressions,
    parse_member,
    parse_suite_gates,
    previous_of,
)
from shared.core.run_profile import RunProfile
from shared.core.run_request import RUN_DEFAULTS
from shared.core.significance import interval


def test_a_member_spec_takes_run_settings_with_the_run_defaults() -> None:
    spec = parse_member("benchmark=humaneval, test-model=ut ,n=10,m=5,profile=coderm-ref")
    assert (spec.name, spec.benchmark, spec.test_model) == ("humaneval", "humaneval", "ut")
    assert spec.settings == dataclasses.replace(
        RUN_DEFAULTS, n_solutions=10, n_tests=5, profile=RunProfile.CODERM_REF
    )
    full = parse_member(
        "name=lcb-slice,benchmark=livecodebench,test_model=ut,problems=20,seed=3,max-tokens=512,"
        "assert-time-limit=0.5,ground-truth-time-limit=6,ground-truth=lcb+,adaptive=true,"
        "test-budget=40,first-round=2,allocation=scarce"
    )
    assert full.name == "lcb-slice"
    assert full.settings.problems == 20 and full.settings.max_tokens == 512
    assert full.settings.adaptive and full.settings.test_budget == 40
    assert full.settings.ground_truth == "lcb+" and full.settings.ground_truth_time_limit_s == 6.0
    assert "n_solutions" not in full.stored_settings() and "lambdas" not in full.stored_settings()


def test_a_member_spec_reads_back_from_its_description() -> None:
    spec = parse_member("name=a,benchmark=mbpp+,test-model=ut,n=4,m=3,problems=2,max-tokens=8")
    assert parse_member(spec.describe()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("test-model=ut", "needs benchmark"),
        ("benchmark=humaneval", "needs test-model"),
        ("benchmark=humaneval,test-model=ut,n=0", "n must be at least 1"),
        ("benchmark=humaneval,test-model=ut,n=ten", "n takes a number"),
        ("benchmark=humaneval,test-model=ut,m=-1", "m must be at least 0"),
        ("benchmark=humaneval,test-model=ut,profile=lax", "profile is one of"),
        ("benchmark=humaneval,test-model=ut,allocation=nosuch", "allocation is one of"),
        ("benchmark=humaneval,test-model=ut,allocation=scarce", "go with test-budget"),
        ("benchmark=humaneval,test-model=ut,adaptive=maybe", "true or false"),
        ("benchmark=humaneval,test-model=ut,colour=red", "unknown key 'colour'"),
        ("benchmark=humaneval,test-model=ut,n=2,n=3", "n given twice"),
        ("benchmark humaneval", "KEY=VALUE"),
        ("benchmark=humaneval,test-model=ut,name=a b", "a name is"),
    ],
)
def test_a_bad_member_spec_is_a_user_error(text: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        parse_member(text)


def test_member_names_differ_and_metrics_are_known() -> None:
    one = parse_member("benchmark=humaneval,test-model=ut")
    with pytest.raises(SuiteError, match="given twice"):
        check_members([one, one])
    with pytest.raises(SuiteError, match="at least one"):
        check_members([])
    check_members([one, MemberSpec("other", "humaneval", "ut", RUN_DEFAULTS)])
    assert check_metric("codet.pass@1", "--headline", pass_at_only=True) == "codet.pass@1"
    assert check_metric("individual.precision", "--gate") == "individual.precision"
    for bad in ("codet", "codet.pass@0", "nosuch.pass@1", "majority.cheer"):
        with pytest.raises(SuiteError, match="unknown metric"):
            check_metric(bad, "--gate")
    with pytest.raises(SuiteError, match="unknown metric"):
        check_metric("majority.far", "--headline", pass_at_only=True)
    assert parse_suite_gates([], "codet.pass@1") == [Gate("codet.pass@1")]
    assert parse_suite_gates(["vanilla.pass@1:2.5"], "codet.pass@1") == [
        Gate("vanilla.pass@1", 2.5)
    ]
    with pytest.raises(SuiteError, match="--gate"):
        parse_suite_gates(["vanilla.pass@1:-1"], "codet.pass@1")


def test_the_best_so_far_is_the_highest_headline_the_earliest_on_a_tie() -> None:
    history = [
        Evaluated(0, "base", "r0", 40.0),
        Evaluated(1, "c1", "r1", 55.0),
        Evaluated(2, "c2", "r2", None),
        Evaluated(3, "c3", "r3", 55.0),
        Evaluated(4, "c4", "r4", 30.0),
    ]
    best = best_of(history)
    assert best is not None and best.checkpoint == "c1"
    previous = previous_of(list(reversed(history)))
    assert previous is not None and previous.checkpoint == "c4"
    assert best_of([]) is None and previous_of([]) is None
    assert best_of([Evaluated(0, "x", "r", None)]) is None


def _stored(metric: str, a: list[float], b: list[float]) -> dict[str, object]:
    return dataclasses.asdict(interval(metric, a, b))


def test_regressions_are_the_gated_metrics_significantly_worse() -> None:
    worse = _stored("codet.pass@1", [0.0, 0.0, 0.0], [50.0, 60.0, 70.0])
    noise = _stored("vanilla.pass@1", [0.0, 100.0, 0.0], [0.0, 0.0, 100.0])
    far_up = _stored("majority.far", [60.0, 70.0, 80.0], [0.0, 0.0, 0.0])
    previous = {"checkpoint": "c1", "run_id": "r1", "intervals": [worse, noise, far_up]}
    best = {"checkpoint": "c0", "run_id": "r0", "intervals": [noise]}
    verdicts = {"previous": previous, "best": best}
    gates = [Gate("codet.pass@1"), Gate("vanilla.pass@1"), Gate("majority.far")]
    found = find_regressions(verdicts, gates)
    assert [(r["metric"], r["against"]) for r in found] == [
        ("codet.pass@1", "previous"),
        ("majority.far", "previous"),
    ]
    assert found[0]["baseline_checkpoint"] == "c1" and found[0]["verdict"] == "worse"
    assert find_regressions(verdicts, [Gate("codet.pass@1", 70.0)]) == []
    assert find_regressions({"previous": None, "best": None}, gates) == []
    assert find_regressions(verdicts, [Gate("oracle.pass@1")]) == []


def test_a_band_is_the_bootstrap_interval_of_the_mean() -> None:
    found = band("codet", [0.0, 100.0, 50.0, 100.0])
    assert found.value == pytest.approx(62.5)
    assert found.low is not None and found.high is not None
    assert 0.0 <= found.low < 62.5 < found.high <= 100.0
    assert band("codet", [40.0, 40.0]) == Band(40.0, 40.0, 40.0)
    assert band("codet", []) == Band(None, None, None)
    bands = strategy_bands([{"codet": 1.0, "vanilla": 0.5}, {"codet": 0.0, "vanilla": 0.5}])
    assert list(bands) == ["vanilla", "codet"]
    assert bands["vanilla"] == Band(50.0, 50.0, 50.0) and bands["codet"].value == 50.0


def test_the_page_is_self_contained_with_every_section() -> None:
    assert "No suites yet" in render([], "now")
    row = {
        "evaluation_id": 1,
        "checkpoint": "step-1",
        "sequence": 0,
        "benchmark": "humaneval",
        "run_id": None,
        "state": "evaluated",
        "headline_value": 12.5,
        "verdict_previous": None,
        "verdict_best": None,
        "regressions": 0,
        "hook_state": None,
    }
    point = Point(
        row=row,
        strategies={"codet": Band(12.5, 5.0, 20.0)},
        quality={"accuracy": 80.0},
        throughput={"executed_per_s": 3.0},
    )
    page = SuitePage(
        name="ci",
        headline="codet.pass@1",
        gates=["codet.pass@1:0"],
        members=[
            {"member": "he", "benchmark": "humaneval", "test_model": "ut", "n": 2, "m": 2,
             "profile": "strict"}
        ],
        points={"he": [point, dataclasses.replace(point, row={**row, "checkpoint": "step-2"})]},
        verdicts={},
    )  # fmt: skip
    html = render([page], "now")
    for section in (
        "Suite ci",
        "Latest verdicts",
        "he (humaneval): pass@1 by strategy",
        "he (humaneval): unit-test quality",
        "Throughput",
        "Checkpoint evaluations",
    ):
        assert section in html
    assert html.count("data:image/png;base64,") == 3
    assert "http://" not in html and "https://" not in html
