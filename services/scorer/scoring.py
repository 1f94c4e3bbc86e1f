"""Pure composition of the strategies: one problem's selections, one run's metrics."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.scorer.strategies import (
    Candidate,
    StrategyResult,
    coderm_majority_vote,
    codet_dual_agreement,
    codet_pass_at_k,
    oracle,
    unbiased_pass_at_k,
    vanilla,
)

PASS_AT_K = (1, 2, 10, 100)


@dataclass(frozen=True)
class ProblemScore:
    """A stored selection reduced to what run metrics need."""

    strategy: str
    score: float
    detail: Mapping[str, object]


def score_problem(
    candidates: Sequence[Candidate], test_weights: Mapping[int, int]
) -> dict[str, StrategyResult]:
    """Every strategy's pick for one problem, keyed by strategy name.

    ``vanilla`` carries ``n`` and ``c`` (samples, correct samples) so that random-pick
    pass@k can be computed for the run; ``codet`` carries its pass@k for k in 2, 10.
    """
    results = {
        "vanilla": vanilla(candidates),
        "oracle": oracle(candidates),
        "coderm_majority": coderm_majority_vote(candidates),
        "codet": codet_dual_agreement(candidates, test_weights),
    }
    n = len(candidates)
    extra: dict[str, float | int | str] = {
        "n": n,
        "c": sum(1 for c in candidates if c.correct),
        "tests": len(test_weights),
        "test_samples": sum(test_weights.values()),
        "unique_solutions": len({c.solution_id for c in candidates if c.solution_id is not None}),
    }
    results["vanilla"] = StrategyResult(
        results["vanilla"].score, results["vanilla"].chosen, {**results["vanilla"].detail, **extra}
    )
    codet_k = {
        f"pass@{k}": codet_pass_at_k(candidates, test_weights, k) for k in PASS_AT_K[1:3] if k <= n
    }
    results["codet"] = StrategyResult(
        results["codet"].score, results["codet"].chosen, {**results["codet"].detail, **codet_k}
    )
    return results


def run_metrics(scores: Iterable[ProblemScore]) -> dict[str, tuple[float, int]]:
    """Mean over problems of each strategy's pass@1 (and pass@k where defined), in percent.

    Returns ``name -> (value, problems)``; names are ``<strategy>.pass@<k>``. Sums are
    exactly rounded (``math.fsum``), so the figures do not depend on the order in which
    problems were scored.
    """
    values: dict[str, list[float]] = defaultdict(list)
    for item in scores:
        values[f"{item.strategy}.pass@1"].append(item.score)
        if item.strategy == "vanilla":
            n, c = int(str(item.detail["n"])), int(str(item.detail["c"]))
            for k in PASS_AT_K[1:]:
                if n >= k:
                    values[f"vanilla.pass@{k}"].append(unbiased_pass_at_k(n, c, k))
        if item.strategy == "codet":
            for k in PASS_AT_K[1:3]:
                value = item.detail.get(f"pass@{k}")
                if isinstance(value, float | int):
                    values[f"codet.pass@{k}"].append(float(value))
    return {name: (100.0 * math.fsum(v) / len(v), len(v)) for name, v in values.items()}
