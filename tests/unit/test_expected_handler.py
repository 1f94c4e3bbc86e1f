"""The executor's ComputeExpected handler with an in-memory store and sandbox double:
what it runs, what it stores, and that a redelivery changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from services.executor.expected_handler import ExpectedHandler, with_outcomes
from services.executor.expected_outputs import CanonicalRun
from shared.broker import WORK_KINDS, kind_of
from shared.core.oracle import Expected, Oracle
from shared.errors import UnknownReferenceError
from shared.messages import EXPECTED_CHUNK, EXPECTED_REQUESTED, ComputeExpected
from tests.stack import ROOT

BENCHMARK = 7
OUTPUTS = Expected(base="[1]", plus="[2]", base_ms=[0.1], plus_ms=[0.2])


def _oracle(**change: object) -> Oracle:
    oracle = Oracle(
        dataset="humaneval",
        atol=0.0,
        base_input="[[1]]",
        plus_input="[[2]]",
        base_count=1,
        plus_count=1,
    )
    return oracle.model_copy(update=change)


@dataclass
class MemoryStore:
    """Problems by id: (benchmark id, task id, oracle), with the store's rules."""

    problems: dict[int, tuple[int, str, Oracle]]
    saves: int = 0

    async def pending(self, message: ComputeExpected) -> dict[int, CanonicalRun]:
        runs = {}
        for pid in message.problem_ids:
            if pid not in self.problems or self.problems[pid][0] != message.benchmark_id:
                raise UnknownReferenceError(f"no problem {pid}")
            _, task_id, oracle = self.problems[pid]
            if oracle.expected is None and oracle.unavailable in (None, EXPECTED_REQUESTED):
                runs[pid] = CanonicalRun(task_id, "def f(x): return x", "f", oracle)
        return runs

    async def save(self, oracles: Mapping[int, Oracle]) -> None:
        self.saves += 1
        for pid, oracle in oracles.items():
            benchmark, task_id, old = self.problems[pid]
            if old.expected is None:
                self.problems[pid] = (benchmark, task_id, oracle)


@dataclass
class FakeSandbox:
    """Canonical outputs for every task but the ones listed as failing."""

    failing: dict[str, str] = field(default_factory=dict)
    runs: list[list[str]] = field(default_factory=list)

    async def __call__(self, problems: Sequence[CanonicalRun]) -> Mapping[str, Expected | str]:
        self.runs.append([p.task_id for p in problems])
        return {p.task_id: self.failing.get(p.task_id, OUTPUTS) for p in problems}


def _handler(store: MemoryStore, sandbox: FakeSandbox) -> ExpectedHandler:
    return ExpectedHandler(store, sandbox, asyncio.Semaphore(1))


async def test_outputs_stored_failures_recorded_and_redelivery_changes_nothing() -> None:
    store = MemoryStore(
        {
            1: (BENCHMARK, "T/1", _oracle()),
            2: (BENCHMARK, "T/2", _oracle()),
            3: (BENCHMARK, "T/3", _oracle(expected=OUTPUTS)),
            4: (BENCHMARK, "T/4", _oracle(unavailable="MemoryError")),
        }
    )
    sandbox = FakeSandbox(failing={"T/2": "MemoryError"})
    handler = _handler(store, sandbox)
    message = ComputeExpected(benchmark_id=BENCHMARK, problem_ids=[1, 2, 3, 4])
    await handler(message)
    assert sandbox.runs == [["T/1", "T/2"]]  # stored and given-up problems are not run
    assert store.problems[1][2].expected == OUTPUTS
    assert store.problems[1][2].unavailable is None
    assert store.problems[2][2].expected is None
    assert store.problems[2][2].unavailable == "MemoryError"
    before = dict(store.problems)
    await handler(message)
    assert sandbox.runs == [["T/1", "T/2"]] and store.problems == before and store.saves == 1


async def test_a_problem_asked_for_again_is_run_again() -> None:
    store = MemoryStore({1: (BENCHMARK, "T/1", _oracle(unavailable=EXPECTED_REQUESTED))})
    sandbox = FakeSandbox()
    await _handler(store, sandbox)(ComputeExpected(benchmark_id=BENCHMARK, problem_ids=[1]))
    assert sandbox.runs == [["T/1"]]
    assert store.problems[1][2].expected == OUTPUTS
    assert store.problems[1][2].unavailable is None


async def test_unknown_problems_are_permanent_errors() -> None:
    store = MemoryStore({1: (BENCHMARK, "T/1", _oracle())})
    sandbox = FakeSandbox()
    with pytest.raises(UnknownReferenceError):
        await _handler(store, sandbox)(ComputeExpected(benchmark_id=BENCHMARK + 1, problem_ids=[1]))
    assert sandbox.runs == []


def test_a_task_the_sandbox_did_not_answer_is_recorded_unavailable() -> None:
    run = CanonicalRun("T/1", "", "f", _oracle())
    oracle = with_outcomes({1: run}, {})[1]
    assert oracle.expected is None and oracle.unavailable


def test_compute_expected_is_a_work_kind_with_bounded_ids() -> None:
    message = ComputeExpected(benchmark_id=1, problem_ids=[3, 4])
    assert kind_of(message) == "expected" and WORK_KINDS["expected"] is ComputeExpected
    assert ComputeExpected.model_validate_json(message.to_body()) == message
    with pytest.raises(ValidationError):
        ComputeExpected(benchmark_id=1, problem_ids=[])
    with pytest.raises(ValidationError):
        ComputeExpected(benchmark_id=1, problem_ids=list(range(EXPECTED_CHUNK + 1)))
    with pytest.raises(ValidationError):
        ComputeExpected.model_validate_json(b'{"run_id": "x", "problem_id": 1}')


def test_the_cli_import_needs_nothing_of_the_executor() -> None:
    """The import's modules reach the executor through the broker only: neither it nor
    Docker's client is imported."""
    program = (
        "import sys, services.cli.benchmark_import, services.cli.expected\n"
        "print(sorted(m for m in sys.modules if m.startswith(('services.executor', 'aiodocker'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
