"""Pure planning of sandbox jobs for a batch, and of result rows from their outcomes.

Job keys encode what a result belongs to: ``e:<solution>:<test>`` for a (solution,
test) execution, ``g:<solution>`` (and ``gb:<solution>``) for a ground-truth label
(:mod:`services.executor.ground_truth`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.client import AssertCheck, AssertJob, Job, JobResult, pair_job
from services.executor.ground_truth import GroundTruthSource, ground_truth_job, label_rows
from services.executor.ground_truth import ground_truth_program as ground_truth_program
from services.executor.ground_truth import label_key as label_key
from services.executor.store import CodeItem
from shared.core.profiles import ExecLimits
from shared.db.verdicts import VerdictRow
from shared.enums import TestStyle


@dataclass(frozen=True)
class Plan:
    """The sandbox jobs of a batch and how many pairs / labels they cover."""

    jobs: list[Job]
    pairs: int
    labels: int


def pair_key(solution_id: int, test_id: int) -> str:
    """Key of a (solution, test) execution job."""
    return f"e:{solution_id}:{test_id}"


def plan_jobs(
    limits: ExecLimits,
    solutions: list[CodeItem],
    tests: list[CodeItem],
    done_pairs: set[tuple[int, int]],
    labelled: set[int],
    ground_truth: GroundTruthSource | None,
) -> Plan:
    """Jobs for every (solution, test) pair and label not already cached (no labels when
    the problem has no ground truth)."""
    jobs: list[Job] = []
    pairs = labels = 0
    for solution in solutions:
        todo = [t for t in tests if (solution.id, t.id) not in done_pairs]
        pairs += len(todo)
        if limits.test_style is TestStyle.UNITTEST:
            jobs.extend(
                pair_job(
                    pair_key(solution.id, test.id),
                    solution.code,
                    test.code,
                    limits.time_limit_s,
                    limits.kill_after_s,
                    limits.adaptive,
                    limits.reference_globals,
                )
                for test in todo
            )
        elif todo:
            jobs.append(
                AssertJob(
                    key=f"a:{solution.id}",
                    setup=solution.code,
                    checks=tuple(AssertCheck(pair_key(solution.id, t.id), t.code) for t in todo),
                    time_limit_s=limits.time_limit_s,
                    setup_time_limit_s=limits.setup_time_limit_s,
                )
            )
        if ground_truth is not None and solution.id not in labelled:
            labels += 1
            jobs.append(ground_truth_job(ground_truth, solution.id, solution.code, limits))
    return Plan(jobs, pairs, labels)


def result_rows(
    results: dict[str, JobResult], ground_truth_profile: str
) -> tuple[list[VerdictRow], list[dict[str, object]]]:
    """Split sandbox results into verdicts (stored under the run's execution profile by
    :func:`shared.db.verdicts.save_verdicts`) and ground-truth rows."""
    executions: list[VerdictRow] = []
    labels: dict[str, JobResult] = {}
    for key, result in results.items():
        parts = key.split(":")
        if parts[0] == "e":
            executions.append(
                VerdictRow(
                    solution_id=int(parts[1]),
                    unit_test_id=int(parts[2]),
                    outcome=result.outcome,
                    detail=result.detail,
                    tests_run=result.tests_run,
                    tests_passed=result.tests_passed,
                )
            )
        elif parts[0] in ("g", "gb"):
            labels[key] = result
    return executions, label_rows(labels, ground_truth_profile)
