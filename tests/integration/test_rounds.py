"""Runs with a test budget go through the real services round by round."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from shared.core.allocation import greedy_allocation
from tests.stack import (
    ROOT,
    Services,
    Stack,
    cli,
    metrics,
    query,
    submit,
    wait_for,
    wait_run_finished,
)

pytestmark = pytest.mark.integration

PROBLEMS = 8
CAP = 30
BUDGET = 64
ARGS = (
    "--benchmark",
    "humaneval",
    "--policy",
    "codegen16b",
    "--test-model",
    "codegen16b",
    "--n",
    "20",
    "--m",
    str(CAP),
    "--problems",
    str(PROBLEMS),
    "--test-budget",
    str(BUDGET),
    "--first-round",
    "2",
    "--allocation",
    "scarce",
    "--assert-time-limit",
    "0.4",  # an execution profile no other test uses: every pair runs in this module
)


def _rounds(stack: Stack, run_id: str) -> list[dict[str, object]]:
    rows = query(
        stack,
        "SELECT round, units, spent_before, problems, metrics, scored_at"
        " FROM run_rounds WHERE run_id = $1 ORDER BY round",
        uuid.UUID(run_id),
    )
    return [dict(r) for r in rows]


def _grants(stack: Stack, run_id: str) -> list[tuple[int, str, int, int]]:
    rows = query(
        stack,
        "SELECT round, task_id, tests_before, granted FROM v_run_round_problems"
        " WHERE run_id = $1 ORDER BY round, task_id",
        uuid.UUID(run_id),
    )
    return [(r["round"], r["task_id"], r["tests_before"], r["granted"]) for r in rows]


def _executed_pairs_logged(stack: Stack, run_id: str) -> int:
    """Pairs the executors say they ran for the run (every execution, repeats included)."""
    total = 0
    for log in stack.log_dir.glob("executor*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"batch.executed"' in line and run_id in line:
                total += int(json.loads(line)["pairs"])
    return total


@pytest.fixture(scope="module")
def budget_run(stack: Stack, services: Services, imported: None) -> str:
    """A finished run with a test budget, undisturbed."""
    run_id = submit(stack, *ARGS)
    wait_run_finished(stack, services, run_id, timeout=900)
    return run_id


def test_rounds_spend_the_budget_within_the_caps(stack: Stack, budget_run: str) -> None:
    """Round 1 gives every problem its first tests; each later round is planned after
    the one before was scored, stored with its grants and reasons, and the budget is
    spent exactly, never past it, no problem past its cap."""
    rounds = _rounds(stack, budget_run)
    assert len(rounds) >= 3
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    spent = 0
    for r in rounds:
        assert r["spent_before"] == spent
        spent += int(str(r["units"]))
        assert r["scored_at"] is not None
        figures = json.loads(str(r["metrics"]))
        assert 0 <= figures["codet.pass@1"] <= 100
    assert spent == BUDGET
    grants = _grants(stack, budget_run)
    assert [g for g in grants if g[0] == 1] == [
        (1, task, 0, 2) for task in sorted({g[1] for g in grants})
    ]
    per_problem: Counter[str] = Counter()
    for round_no, task, before, granted in grants:
        assert before == per_problem[task], (round_no, task)
        per_problem[task] += granted
    assert len(per_problem) == PROBLEMS
    assert max(per_problem.values()) <= CAP
    assert len(set(per_problem.values())) > 1  # the allocation did not spread evenly
    reasons = query(
        stack,
        "SELECT DISTINCT reason FROM run_round_problems WHERE run_id = $1 AND round > 1",
        uuid.UUID(budget_run),
    )
    assert all("separating tests" in r["reason"] for r in reasons)


def test_each_round_samples_new_tests_and_runs_only_new_pairs(
    stack: Stack, budget_run: str
) -> None:
    """A problem's test samples are exactly the samples its rounds asked for, each
    once, in order; every (solution, test) pair of the run ran exactly once."""
    run = uuid.UUID(budget_run)
    samples = query(
        stack,
        "SELECT p.task_id, array_agg(co.sample_index ORDER BY co.sample_index) AS indices"
        " FROM run_completions rc JOIN completions co ON co.id = rc.completion_id"
        " JOIN problems p ON p.id = rc.problem_id"
        " WHERE rc.run_id = $1 AND rc.role = 'test' GROUP BY p.task_id",
        run,
    )
    asked: Counter[str] = Counter()
    for _, task, _, granted in _grants(stack, budget_run):
        asked[task] += granted
    assert {r["task_id"]: list(r["indices"]) for r in samples} == {
        task: list(range(n)) for task, n in asked.items()
    }
    pairs = query(
        stack,
        "SELECT count(*) AS n FROM executions e JOIN runs r ON r.id = $1"
        " WHERE e.profile = r.exec_profile"
        " AND (e.solution_id, e.unit_test_id) IN ("
        "   SELECT s.solution_id, t.unit_test_id FROM v_run_solution_samples s"
        "   JOIN v_run_tests t ON t.run_id = s.run_id AND t.problem_id = s.problem_id"
        "   WHERE s.run_id = $1)",
        run,
    )[0]["n"]
    distinct = query(
        stack,
        "SELECT count(*) AS n FROM (SELECT DISTINCT s.solution_id, t.unit_test_id"
        " FROM v_run_solution_samples s JOIN v_run_tests t"
        " ON t.run_id = s.run_id AND t.problem_id = s.problem_id"
        " WHERE s.run_id = $1 AND s.solution_id IS NOT NULL) x",
        run,
    )[0]["n"]
    assert pairs == distinct > 0
    assert _executed_pairs_logged(stack, budget_run) == distinct
    batches = query(
        stack,
        "SELECT sum(executed) AS n, count(DISTINCT batch_no / 10000) AS rounds"
        " FROM execution_batches WHERE run_id = $1",
        run,
    )[0]
    assert batches["n"] == distinct
    assert batches["rounds"] >= 3


def test_status_and_report_show_the_rounds(stack: Stack, budget_run: str) -> None:
    """``coderm status`` and the report list every round with its tests and figures."""
    rounds = _rounds(stack, budget_run)
    status = cli(stack, "status", budget_run)
    assert status.returncode == 0, status.stderr
    assert f"rounds: {len(rounds)}" in status.stdout
    assert f"{BUDGET}/{BUDGET} test samples" in status.stdout
    report = cli(stack, "report", budget_run, "--format", "json")
    assert report.returncode == 0, report.stderr
    listed = json.loads(report.stdout)["rounds"]
    assert [r["round"] for r in listed] == [r["round"] for r in rounds]
    assert sum(r["units"] for r in listed) == BUDGET
    table = cli(stack, "report", budget_run)
    assert "Rounds of the test budget" in table.stdout


@pytest.mark.usefixtures("imported")
def test_services_killed_mid_round_give_the_same_allocation(
    stack: Stack, services: Services, budget_run: str
) -> None:
    """The same run again (same seed), with the scorer and the extractor killed while
    its rounds go on: it finishes with the same rounds, grants and figures."""
    run_id = submit(stack, *ARGS)

    def round_open(no: int) -> bool:
        return any(r["round"] == no for r in _rounds(stack, run_id))

    wait_for(lambda: round_open(2), 300, "round 2 of the second run")
    services.kill("scorer")
    services.start("scorer")
    wait_for(lambda: round_open(4), 300, "round 4 of the second run")
    services.kill("extractor")
    services.kill("generator")
    services.start("extractor")
    services.start("generator")
    wait_run_finished(stack, services, run_id, timeout=900)
    assert _grants(stack, run_id) == _grants(stack, budget_run)
    assert metrics(stack, run_id) == metrics(stack, budget_run)
    first = [(r["round"], r["units"], r["metrics"]) for r in _rounds(stack, budget_run)]
    assert [(r["round"], r["units"], r["metrics"]) for r in _rounds(stack, run_id)] == first


def test_the_rounds_examples_of_the_sql_guide_give_the_rounds(
    stack: Stack, budget_run: str
) -> None:
    """docs/SQL.md's queries over the rounds views, on this run: one row a round whose
    spending adds up to the budget, and every problem with its tests and a reason."""
    text = (ROOT / "docs" / "SQL.md").read_text()
    examples = [sql for sql in re.findall(r"```sql\n(.*?)```", text, re.S) if "v_run_round" in sql]
    assert len(examples) == 2
    run = uuid.UUID(budget_run)
    curve, where = (query(stack, sql.replace(":'run'", "$1"), run) for sql in examples)
    assert [r["round"] for r in curve] == list(range(1, len(curve) + 1))
    assert curve[-1]["spent_after"] == BUDGET
    assert all(r["codet"] is not None for r in curve)
    assert len(where) == PROBLEMS
    assert sum(r["tests"] for r in where) == BUDGET
    assert all(r["last_reason"] for r in where)


@pytest.mark.usefixtures("imported")
def test_paper_allocation_spends_by_the_probes_predicted_pass_rates(
    stack: Stack, services: Services, tmp_path: Path
) -> None:
    """With ``--difficulty`` (a ``coderm difficulty predict --out`` file) the paper's
    rule ranks problems by the predicted pass rates alone, so the rounds together give
    exactly what the greedy rule gives in one go; a file missing problems, or one
    without a budget, is refused."""
    lambdas = {f"HumanEval/{i}": round(0.1 * i + 0.05, 2) for i in range(PROBLEMS)}
    predictions = tmp_path / "lambdas.json"
    predictions.write_text(json.dumps({"policy": "codegen16b", "predictions": lambdas}))
    paper = [a if a != "scarce" else "paper" for a in ARGS]
    run_id = submit(stack, *paper, "--difficulty", str(predictions))
    wait_run_finished(stack, services, run_id, timeout=900)
    tests: Counter[str] = Counter()
    for _, task, _, granted in _grants(stack, run_id):
        tests[task] += granted
    tasks = [f"HumanEval/{i}" for i in range(PROBLEMS)]
    first = 2
    expected = greedy_allocation(
        [lambdas[t] for t in tasks], BUDGET - first * PROBLEMS, [first] * PROBLEMS, [CAP] * PROBLEMS
    )
    assert [tests[t] for t in tasks] == expected
    reasons = query(
        stack,
        "SELECT reason FROM run_round_problems WHERE run_id = $1 AND round > 1",
        uuid.UUID(run_id),
    )
    assert reasons and all(r["reason"].startswith("probe's lambda") for r in reasons)

    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"policy": "codegen16b", "predictions": {"HumanEval/0": 0.5}}))
    refused = cli(stack, "run", *paper, "--difficulty", str(partial), "--detach")
    assert refused.returncode != 0
    assert "no predicted pass rate for 7 problems" in refused.stdout + refused.stderr
    plain = paper[: paper.index("--test-budget")]
    refused = cli(stack, "run", *plain, "--difficulty", str(predictions), "--detach")
    assert refused.returncode != 0
    assert "--difficulty needs --test-budget" in refused.stdout + refused.stderr
