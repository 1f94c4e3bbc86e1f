"""A real run through all four services, checked against an independent oracle."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import uuid

import pytest

from shared.core.extraction import extract_completion_solution
from tests.stack import ROOT, Services, Stack, cli, metrics, query, submit, wait_run_finished

pytestmark = pytest.mark.integration
DEMO = ROOT / "data" / "demo"
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")


def _load(name: str) -> list[dict[str, object]]:
    with gzip.open(DEMO / name, "rt") as handle:
        return [json.loads(line) for line in handle]


def _passes_hidden_tests(program: str) -> bool:
    """Independent oracle: run the program in a plain subprocess, no sandbox involved."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, timeout=3, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def test_run_matches_independent_ground_truth(
    stack: Stack, services: Services, imported: None
) -> None:
    """Vanilla pass@1 and the stored labels equal a plain-subprocess re-execution."""
    run_id = submit(
        stack,
        *RUN_ARGS,
        *("--n", "8", "--m", "20", "--problems", "4"),
    )
    wait_run_finished(stack, services, run_id, timeout=240)

    problems = _load("humaneval.jsonl.gz")[:4]
    samples = {r["prompt"]: r["samples"] for r in _load("codegen16b_solutions.jsonl.gz")}
    per_problem = []
    for problem in problems:
        prompt = str(problem["prompt"])
        texts = list(samples[prompt])[:8]  # type: ignore[call-overload]
        correct = 0
        for text in texts:
            code = extract_completion_solution(prompt, str(text)).code[0]
            program = f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
            correct += _passes_hidden_tests(program)
        per_problem.append(correct / len(texts))
    expected = 100 * sum(per_problem) / len(per_problem)

    got = metrics(stack, run_id)
    assert got["vanilla.pass@1"] == pytest.approx(expected)
    assert set(got) >= {"oracle.pass@1", "coderm_majority.pass@1", "codet.pass@1"}
    assert got["oracle.pass@1"] >= got["codet.pass@1"] >= 0

    report = cli(stack, "report", run_id[:8])
    assert report.returncode == 0, report.stderr
    assert "CodeT dual agreement" in report.stdout
    assert f"{got['codet.pass@1']:.2f}" in report.stdout
    listing = cli(stack, "runs")
    assert listing.returncode == 0, listing.stderr
    assert run_id[:8] in listing.stdout and "finished" in listing.stdout


def test_assert_verdicts_match_plain_execution(
    stack: Stack, services: Services, imported: None
) -> None:
    """A sample of stored (solution, assert) verdicts re-run outside the sandbox agree."""
    run_id = submit(
        stack,
        *RUN_ARGS,
        *("--n", "5", "--m", "10", "--problems", "3"),
    )
    wait_run_finished(stack, services, run_id, timeout=240)
    rows = query(
        stack,
        """
        SELECT s.code AS solution, t.code AS test, e.passed
        FROM executions e JOIN solutions s ON s.id = e.solution_id
        JOIN unit_tests t ON t.id = e.unit_test_id
        JOIN runs r ON r.exec_profile = e.profile AND r.id = $1
        WHERE e.outcome <> 'timeout'
        ORDER BY e.solution_id, e.unit_test_id LIMIT 60
        """,
        uuid.UUID(run_id),
    )
    assert rows, "the run stored no executions"
    for row in rows:
        assert _passes_hidden_tests(f"{row['solution']}\n{row['test']}\n") == row["passed"], row


def test_completions_extracted_under_older_rules_are_extracted_again(
    stack: Stack, services: Services, imported: None
) -> None:
    """A second run reuses extractions made under the current rules; extractions from
    older rules (here: marked old and with their links lost) are redone in full."""
    args = (*RUN_ARGS, "--n", "6", "--m", "8", "--problems", "3")
    first = submit(stack, *args)
    wait_run_finished(stack, services, first, timeout=240)
    completions = """SELECT rc.completion_id FROM run_completions rc WHERE rc.run_id = $1"""
    query(
        stack,
        f"UPDATE completions SET extracted_by = 'old', extraction_status = NULL "
        f"WHERE id IN ({completions})",
        uuid.UUID(first),
    )
    query(
        stack,
        f"DELETE FROM completion_solutions WHERE completion_id IN ({completions})",
        uuid.UUID(first),
    )
    query(
        stack,
        f"DELETE FROM completion_tests WHERE completion_id IN ({completions})",
        uuid.UUID(first),
    )

    second = submit(stack, *args)
    wait_run_finished(stack, services, second, timeout=240)
    assert metrics(stack, second) == metrics(stack, first)
    stale = query(
        stack,
        f"SELECT count(*) AS n FROM completions WHERE id IN ({completions}) "
        "AND (extracted_by = 'old' OR extraction_status IS NULL)",
        uuid.UUID(first),
    )
    assert stale[0]["n"] == 0
