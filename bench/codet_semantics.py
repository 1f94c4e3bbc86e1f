"""How much CodeT's figures depend on its executor's timeout semantics.

Reads a finished assert-style run from the database (no re-execution) and prints
CodeT pass@1/2/10 three ways: as the run executed them (each assert under its own
limit, a solution keeps the asserts it passed), and as CodeT's released executor
would have counted a solution that hit a timeout (its whole process is killed once
its total budget of ``limit x asserts + limit`` runs out, and every assert of the
solution then counts as failed: approximated by "any timeout -> no passes").

    .venv/bin/python bench/codet_semantics.py RUN_ID
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable

import asyncpg

from shared.core.strategies import Candidate, codet_dual_agreement, codet_pass_at_k
from shared.settings import ServiceSettings

Rule = Callable[[int], bool]


async def _load(
    run_id: uuid.UUID,
) -> tuple[
    dict[int, list[int | None]],
    dict[int, Counter[int]],
    dict[int, set[int]],
    Counter[int],
    dict[int, bool],
]:
    url = ServiceSettings().database.url.get_secret_value().replace("+asyncpg", "")
    connection = await asyncpg.connect(url)
    try:
        run = await connection.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
        if run is None:
            raise SystemExit(f"no run {run_id}")
        samples = await connection.fetch(
            """SELECT rc.problem_id, cs.solution_id FROM run_completions rc
               JOIN completions co ON co.id = rc.completion_id
               LEFT JOIN completion_solutions cs ON cs.completion_id = co.id
               WHERE rc.run_id = $1 AND rc.role = 'solution'
               ORDER BY rc.problem_id, co.sample_index""",
            run_id,
        )
        tests = await connection.fetch(
            """SELECT rc.problem_id, ct.unit_test_id FROM run_completions rc
               JOIN completion_tests ct ON ct.completion_id = rc.completion_id
               WHERE rc.run_id = $1 AND rc.role = 'test'""",
            run_id,
        )
        executions = await connection.fetch(
            "SELECT solution_id, unit_test_id, passed, outcome FROM executions WHERE profile = $1",
            run["exec_profile"],
        )
        labels = await connection.fetch(
            "SELECT solution_id, passed FROM ground_truth WHERE profile = $1",
            run["ground_truth_profile"],
        )
    finally:
        await connection.close()
    per_problem: dict[int, list[int | None]] = defaultdict(list)
    for row in samples:
        per_problem[row["problem_id"]].append(row["solution_id"])
    weights: dict[int, Counter[int]] = defaultdict(Counter)
    for row in tests:
        weights[row["problem_id"]][row["unit_test_id"]] += 1
    passed: dict[int, set[int]] = defaultdict(set)
    timeouts: Counter[int] = Counter()
    for row in executions:
        if row["passed"]:
            passed[row["solution_id"]].add(row["unit_test_id"])
        timeouts[row["solution_id"]] += row["outcome"] == "timeout"
    correct = {row["solution_id"]: bool(row["passed"]) for row in labels}
    return per_problem, weights, passed, timeouts, correct


def main() -> None:
    """Print CodeT's figures for the run under both timeout semantics."""
    run_id = uuid.UUID(sys.argv[1])
    per_problem, weights, passed, timeouts, correct = asyncio.run(_load(run_id))
    rules: dict[str, Rule] = {
        "each assert on its own (as run)": lambda _sid: False,
        "CodeT: a timeout fails the solution": lambda sid: timeouts[sid] > 0,
    }
    for label, loses_passes in rules.items():
        totals = [0.0, 0.0, 0.0]
        for problem_id, solution_ids in per_problem.items():
            tests = weights[problem_id]
            candidates = [
                Candidate(None)
                if sid is None
                else Candidate(
                    sid,
                    frozenset() if loses_passes(sid) else frozenset(passed[sid] & set(tests)),
                    correct[sid],
                )
                for sid in solution_ids
            ]
            totals[0] += codet_dual_agreement(candidates, tests).score
            totals[1] += codet_pass_at_k(candidates, tests, 2)
            totals[2] += codet_pass_at_k(candidates, tests, 10)
        k = len(per_problem)
        figures = "  ".join(
            f"pass@{n} {100 * t / k:.2f}" for n, t in zip((1, 2, 10), totals, strict=True)
        )
        print(f"{label:40s} {figures}")


if __name__ == "__main__":
    main()
