"""Planning sandbox jobs from a batch and turning results into rows."""

from __future__ import annotations

import json
import zlib

import pytest

from sandbox.client.container import worst_case_seconds
from sandbox.client.framing import GRACE_S, HEADER, MAGIC, REFERENCE_GLOBALS, encode_batch
from sandbox.client.jobs import AssertCheck, AssertJob, UnittestJob
from sandbox.client.results import JobResult
from services.executor.jobs import ground_truth_program, plan_jobs, result_rows
from services.executor.store import CodeItem
from shared.core.profiles import ExecLimits
from shared.enums import Outcome
from shared.enums import TestStyle as Style

SOLUTIONS = [CodeItem(1, "def f(): return 1"), CodeItem(2, "def f(): return 2")]
TESTS = [CodeItem(10, "assert f() == 1"), CodeItem(11, "assert f() == 2")]


def test_assert_style_one_job_per_solution_skipping_cached_pairs_and_labels() -> None:
    limits = ExecLimits.default_for(Style.ASSERT, 0.1)
    plan = plan_jobs(limits, SOLUTIONS, TESTS, {(1, 10)}, {2}, "check")
    assert plan.pairs == 3
    assert plan.labels == 1
    kinds = [(type(j).__name__, j.key) for j in plan.jobs]
    assert kinds == [("AssertJob", "a:1"), ("AssertJob", "gt:1"), ("AssertJob", "a:2")]
    first = plan.jobs[0]
    assert isinstance(first, AssertJob)
    assert [c.key for c in first.checks] == ["e:1:11"]
    assert first.time_limit_s == 0.1


def test_unittest_style_one_job_per_pair_with_pair_code() -> None:
    limits = ExecLimits.default_for(Style.UNITTEST)
    plan = plan_jobs(limits, SOLUTIONS[:1], TESTS, set(), {1}, "check")
    assert plan.pairs == 2 and plan.labels == 0
    assert all(isinstance(j, UnittestJob) for j in plan.jobs)
    job = plan.jobs[0]
    assert isinstance(job, UnittestJob)
    assert job.code == "def f(): return 1\n\nassert f() == 1"
    assert (job.time_limit_s, job.kill_after_s) == (1.0, 2.0)


@pytest.mark.parametrize("reference", [False, True])
def test_unittest_jobs_carry_the_runs_globals_mode(reference: bool) -> None:
    limits = ExecLimits(
        test_style=Style.UNITTEST, time_limit_s=1.0, kill_after_s=2.0, reference_globals=reference
    )
    plan = plan_jobs(limits, SOLUTIONS[:1], TESTS, set(), {1}, "check")
    assert [j.reference_globals for j in plan.jobs if isinstance(j, UnittestJob)] == [reference] * 2
    wire = json.loads(zlib.decompress(encode_batch(plan.jobs)[len(MAGIC) + HEADER.size :]))
    expected = [REFERENCE_GLOBALS] * 2 if reference else [None, None]
    assert [job.get("globals") for job in wire["jobs"]] == expected


def test_nothing_to_do_when_everything_is_cached() -> None:
    limits = ExecLimits.default_for(Style.ASSERT)
    done = {(s.id, t.id) for s in SOLUTIONS for t in TESTS}
    assert plan_jobs(limits, SOLUTIONS, TESTS, done, {1, 2}, "check").jobs == []


def test_result_rows_split_executions_and_labels() -> None:
    results = {
        "e:1:10": JobResult("e:1:10", Outcome.PASS, None, None, 1.5, None),
        "e:1:11": JobResult("e:1:11", Outcome.TIMEOUT, None, None, 100.0, "limit"),
        "g:1": JobResult("g:1", Outcome.FAIL, None, None, 2.0, "AssertionError"),
    }
    executions, labels = result_rows(results, "G")
    assert sorted((r.unit_test_id, r.outcome.value, r.detail) for r in executions) == [
        (10, "pass", None),
        (11, "timeout", "limit"),
    ]
    assert labels == [
        {
            "solution_id": 1,
            "profile": "G",
            "outcome": "fail",
            "passed": False,
            "base_passed": None,
            "plus_passed": None,
            "duration_ms": 2.0,
            "detail": "AssertionError",
        }
    ]


def test_ground_truth_program_calls_check_on_the_entry_point() -> None:
    assert ground_truth_program("def check(c):\n    assert c()", "f").endswith("check(f)\n")


def test_worst_case_bounds_every_pair_running_into_its_limit() -> None:
    unittest_job = UnittestJob("u", "code", 1.0, 2.0)
    assert_job = AssertJob("a", "setup", (AssertCheck("c1", "x"), AssertCheck("c2", "y")), 0.1, 3.0)
    assert worst_case_seconds([unittest_job]) == pytest.approx(2.0 + GRACE_S)
    # setup, then each check: limit + grace + a fresh worker's setup
    assert worst_case_seconds([assert_job]) == pytest.approx(3.0 + 2 * (0.1 + GRACE_S + 3.0))
