"""Pure composition of the strategies: one problem's selections, one run's metrics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.core.metrics import mean, random_pass_at_k
from shared.core.strategies import (
    Candidate,
    StrategyResult,
    coderm_majority_vote,
    codet_dual_agreement,
    codet_pass_at_k,
    first_max,
    mbr_exec,
    oracle,
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

    Strategies: ``vanilla``, ``oracle``, ``coderm_majority``, ``codet``,
    ``mbr_exec`` and ``first_max`` (the names stored in ``selections.strategy``).
    ``vanilla`` carries ``n`` and ``c`` (samples, correct samples) so that random-pick
    pass@k can be computed for the run; ``codet`` carries its pass@k for k in 2, 10.
    Pure and deterministic: scoring a matrix twice gives equal results (the scorer's
    upsert relies on it).
    """
    results = {
        "vanilla": vanilla(candidates),
        "oracle": oracle(candidates),
        "coderm_majority": coderm_majority_vote(candidates),
        "codet": codet_dual_agreement(candidates, test_weights),
        "mbr_exec": mbr_exec(candidates),
        "first_max": first_max(candidates),
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
    """Mean over problems of each strategy's pass@1 (every strategy stored, so
    ``mbr_exec.pass@1`` and ``first_max.pass@1`` too), and pass@k where every problem
    defines it (as CodeT reports pass@k), in percent.

    Returns ``name -> (value, problems)``; names are ``<strategy>.pass@<k>``. Random-pick
    pass@k is :func:`~shared.core.metrics.random_pass_at_k` of the problems'
    ``(n, c)``; CodeT's pass@k the mean of its per-problem values.
    """
    pass_at_1: dict[str, list[float]] = defaultdict(list)
    counts: list[tuple[int, int]] = []
    codet_k: dict[int, list[float]] = defaultdict(list)
    for item in scores:
        pass_at_1[item.strategy].append(item.score)
        if item.strategy == "vanilla":
            counts.append((int(str(item.detail["n"])), int(str(item.detail["c"]))))
        if item.strategy == "codet":
            for k in PASS_AT_K[1:3]:
                value = item.detail.get(f"pass@{k}")
                if isinstance(value, float | int):
                    codet_k[k].append(float(value))
    out = {f"{name}.pass@1": (100.0 * mean(v), len(v)) for name, v in pass_at_1.items()}
    for k in PASS_AT_K[1:]:
        value = random_pass_at_k(counts, k) if counts else None
        if value is not None:
            out[f"vanilla.pass@{k}"] = (100.0 * value, len(counts))
        if codet_k[k] and len(codet_k[k]) == len(pass_at_1["codet"]):
            out[f"codet.pass@{k}"] = (100.0 * mean(codet_k[k]), len(codet_k[k]))
    return out
