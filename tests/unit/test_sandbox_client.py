"""The sandbox client without Docker: its one retry policy (against a scripted runner of
batches), timings returned with results, and one framing for every job kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.client import (
    SANDBOX_ATTEMPTS,
    AssertCheck,
    AssertJob,
    BatchResult,
    EvalplusCheck,
    EvalplusCheckJob,
    ExpectedJob,
    Job,
    JobResult,
    Progress,
    SandboxError,
    Timings,
    pair_job,
    run_with_retries,
)
from sandbox.client import retry as retry_module
from sandbox.client.framing import (
    MAX_EXPECTED_STDOUT_BYTES,
    MAX_STDOUT_BYTES,
    decode_batch,
    encode_batch,
    max_stdout_bytes,
    parse_output,
)
from sandbox.client.jobs import result_keys
from shared.broker import MAX_ATTEMPTS
from shared.enums import Outcome

RUN = Timings(create_s=0.1, run_s=1.0, delete_s=0.2, total_s=1.3, cpu_s=0.5, containers=1)


def _result(key: str, outcome: Outcome = Outcome.PASS) -> JobResult:
    return JobResult(key, outcome, None, None, 1.0, None)


Step = SandboxError | dict[str, Outcome]
"""A scripted container run: it breaks, or gives these outcomes (PASS for the rest)."""


@dataclass
class ScriptedSandbox:
    """Runs batches by a script; records the keys of each run and its progress callback."""

    script: list[Step]
    runs: list[list[str]] = field(default_factory=list)
    progress: list[Progress | None] = field(default_factory=list)

    async def run_batch(
        self, jobs: Sequence[Job], progress: Progress | None = None, site_packages: bool = True
    ) -> BatchResult:
        keys = result_keys(jobs)
        self.runs.append(keys)
        self.progress.append(progress)
        step = self.script.pop(0)
        if isinstance(step, SandboxError):
            step.timings = RUN
            raise step
        return BatchResult({k: _result(k, step.get(k, Outcome.PASS)) for k in keys}, RUN)


JOBS: list[Job] = [
    pair_job("p1", "def f(): pass", "t", 1.0, 2.0),
    pair_job("p2", "def f(): pass", "u", 1.0, 2.0),
    AssertJob("a", "x = 1", (AssertCheck("a1", "assert x"), AssertCheck("a2", "assert x")), 1, 3),
]


def test_the_worst_case_under_the_broker_is_stated_with_the_count() -> None:
    """The constant's docstring states what it costs with the broker's deliveries."""
    text = Path(retry_module.__file__).read_text(encoding="utf-8")
    assert f"SANDBOX_ATTEMPTS = {SANDBOX_ATTEMPTS}\n" in text
    assert f"= {SANDBOX_ATTEMPTS} x {MAX_ATTEMPTS} = {SANDBOX_ATTEMPTS * MAX_ATTEMPTS}" in text
    assert f"``SANDBOX_ATTEMPTS`` = {SANDBOX_ATTEMPTS} container runs" in text


async def test_a_finished_run_is_returned_with_its_timings() -> None:
    sandbox = ScriptedSandbox([{}])
    batch = await run_with_retries(sandbox, JOBS)
    assert set(batch.results) == {"p1", "p2", "a1", "a2"}
    assert (batch.timings, batch.retried) == (RUN, ())
    assert len(sandbox.runs) == 1


async def test_a_broken_run_is_repeated_whole_with_progress() -> None:
    sandbox = ScriptedSandbox([SandboxError("container vanished"), {}])
    seen: list[int] = []
    batch = await run_with_retries(sandbox, JOBS, seen.append)
    assert sandbox.runs == [["p1", "p2", "a1", "a2"]] * 2
    assert sandbox.progress == [seen.append, seen.append]
    assert batch.timings == RUN + RUN
    assert batch.timings.containers == 2
    assert len(batch.retried) == 1 and "container vanished" in batch.retried[0]


async def test_every_run_broken_raises_with_every_runs_timings() -> None:
    sandbox = ScriptedSandbox([SandboxError("a"), SandboxError("b"), {}])
    with pytest.raises(SandboxError, match="b") as raised:
        await run_with_retries(sandbox, JOBS)
    assert len(sandbox.runs) == SANDBOX_ATTEMPTS
    assert raised.value.timings.containers == SANDBOX_ATTEMPTS


async def test_jobs_the_runner_failed_on_are_run_again_alone() -> None:
    sandbox = ScriptedSandbox([{"p2": Outcome.SANDBOX_ERROR, "a2": Outcome.SANDBOX_ERROR}, {}])
    batch = await run_with_retries(sandbox, JOBS)
    # the whole assert job runs again (its checks share one worker), p1 does not
    assert sandbox.runs == [["p1", "p2", "a1", "a2"], ["p2", "a1", "a2"]]
    assert sandbox.progress[1] is None
    assert all(r.outcome is Outcome.PASS for r in batch.results.values())
    assert batch.timings.containers == 2


async def test_sandbox_errors_left_after_the_last_attempt_are_returned_as_such() -> None:
    broken = {"p2": Outcome.SANDBOX_ERROR}
    sandbox = ScriptedSandbox([broken] * SANDBOX_ATTEMPTS)
    batch = await run_with_retries(sandbox, JOBS)
    assert batch.results["p2"].outcome is Outcome.SANDBOX_ERROR
    assert batch.results["p1"].outcome is Outcome.PASS
    assert len(sandbox.runs) == SANDBOX_ATTEMPTS


async def test_a_broken_rerun_of_failed_jobs_keeps_the_first_results() -> None:
    sandbox = ScriptedSandbox([{"p2": Outcome.SANDBOX_ERROR}, SandboxError("gone")])
    batch = await run_with_retries(sandbox, JOBS)
    assert batch.results["p2"].outcome is Outcome.SANDBOX_ERROR
    assert batch.timings.containers == 2


def test_timings_add_up() -> None:
    total = RUN + RUN
    assert total.as_dict() == {
        "create": 0.2,
        "run": 2.0,
        "delete": 0.4,
        "total": 2.6,
        "cpu": 1.0,
        "containers": 2,
    }


def test_every_kind_travels_in_one_framing_and_shared_texts_go_once() -> None:
    spec = repr({"label": "plus", "inputs": "[[1]]"})
    jobs: list[Job] = [
        pair_job("p", "def f(): pass", "t", 1.0, 2.0),
        AssertJob("a", "x = 1", (AssertCheck("a1", "assert x"),), 0.1, 3.0),
        EvalplusCheckJob("gt:1", "def f(): pass", (EvalplusCheck("g:1", spec),), 5.0, 3.0),
        EvalplusCheckJob("gt:2", "def f(): return 1", (EvalplusCheck("g:2", spec),), 5.0, 3.0),
        ExpectedJob("T/1", "T/1", "def f(): pass", "f", "humaneval", 0.0, "[]", "[]", False, 9),
    ]
    batch = decode_batch(encode_batch(jobs))
    kinds = [j["kind"] for j in batch["jobs"]]
    assert kinds == ["unittest", "asserts", "evalplus_check", "evalplus_check", "evalplus_expected"]
    texts = batch["texts"]
    assert texts.count(spec) == 1 and texts.count("def f(): pass") == 1
    check = batch["jobs"][2]
    assert texts[check["solution"]] == "def f(): pass"
    assert texts[check["checks"][0]["spec"]] == spec
    expected = batch["jobs"][4]
    assert texts[expected["code"]] == "def f(): pass" and expected["task_id"] == "T/1"
    assert result_keys(jobs) == ["p", "a1", "g:1", "g:2", "T/1"]
    assert max_stdout_bytes(jobs) == MAX_EXPECTED_STDOUT_BYTES
    assert max_stdout_bytes(jobs[:4]) == MAX_STDOUT_BYTES


def test_a_result_line_may_carry_a_value() -> None:
    out = (
        b'{"key": "T/1", "outcome": "pass", "detail": null, "value": {"base": "[]"}}\n'
        b'{"key": "k", "outcome": "pass", "value": "not an object"}\n'
        b'{"done": true}\n'
    )
    results = parse_output(out, ["T/1", "k"])
    assert results["T/1"].value == {"base": "[]"}
    assert results["k"].value is None
