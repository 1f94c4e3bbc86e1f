"""The scorer and the report load a run's matrices the same way and agree on which
problems are labelled, also when ``--ground-truth`` labels a benchmark that has no
hidden tests of its own."""

from __future__ import annotations

import json

import pytest

from tests.stack import (
    ROOT,
    Services,
    Stack,
    cli,
    metrics,
    query,
    submit,
    wait_run_finished,
)

pytestmark = pytest.mark.integration
DEMO = ROOT / "data" / "demo"
BARE = "humaneval-bare"
"""The demo benchmark imported again, then stripped of its hidden tests (kind ``none``)."""


def _import_bare(stack: Stack) -> None:
    steps = [
        ("import-benchmark", BARE, "--file", str(DEMO / "humaneval.jsonl.gz"),
         "--test-prompts", str(DEMO / "humaneval_test_prompts.jsonl.gz")),
        *(
            ("import-completions", str(DEMO / file), "--benchmark", BARE,
             "--model", "codegen16b", "--role", role)
            for role, file in (
                ("solution", "codegen16b_solutions.jsonl.gz"),
                ("test", "codegen16b_tests.jsonl.gz"),
            )
        ),
    ]  # fmt: skip
    for step in steps:
        result = cli(stack, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    query(
        stack,
        """UPDATE problems SET ground_truth = 'none', test_code = ''
           WHERE benchmark_id = (SELECT id FROM benchmarks WHERE name = $1)""",
        BARE,
    )


@pytest.mark.usefixtures("imported")
def test_report_and_scorer_agree_on_labels_under_another_ground_truth(
    stack: Stack, services: Services
) -> None:
    """A run on problems with no hidden tests, labelled by ``--ground-truth humaneval``:
    the scorer scores it as labelled, and the report counts every problem as labelled
    with the scorer's figures (no problem set apart as unlabelled)."""
    _import_bare(stack)
    run_id = submit(
        stack,
        *("--benchmark", BARE, "--ground-truth", "humaneval"),
        *("--policy", "codegen16b", "--test-model", "codegen16b"),
        *("--n", "6", "--m", "6", "--problems", "3"),
    )
    wait_run_finished(stack, services, run_id, timeout=300)
    stored = metrics(stack, run_id)
    assert "codet.pass@1" in stored and "oracle.pass@1" in stored

    result = cli(stack, "report", run_id[:8], "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["analysis"]["ground_truth"] == "available"
    assert data["analysis"]["unlabelled"] == []
    assert len(data["analysis"]["problem_rows"]) == 3
    assert data["mismatches"] == []
    for name, value in stored.items():
        assert data["metrics"][name] == pytest.approx(value), name
