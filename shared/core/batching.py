"""How a problem's (solution x test) matrix is cut into execution batches (pure)."""

from __future__ import annotations


def solutions_per_batch(tests: int, pairs_per_batch: int, max_solutions: int) -> int:
    """Solutions a batch holds so that it stays near ``pairs_per_batch`` pairs.

    Each solution brings ``tests + 1`` jobs (its tests and its ground-truth label), so
    the answer is ``pairs_per_batch // (tests + 1)``, clamped to ``1..max_solutions``.
    """
    if pairs_per_batch < 1 or max_solutions < 1 or tests < 0:
        raise ValueError(f"bad batch sizing: {tests=} {pairs_per_batch=} {max_solutions=}")
    return max(1, min(max_solutions, pairs_per_batch // (tests + 1)))


def split_batches(solution_ids: list[int], per_batch: int) -> list[list[int]]:
    """Consecutive batches of ``per_batch`` solutions, the last one possibly smaller;
    the sizes are evened out, so no batch is much smaller than the others."""
    if per_batch < 1:
        raise ValueError(f"per_batch must be positive, got {per_batch}")
    if not solution_ids:
        return []
    count = -(-len(solution_ids) // per_batch)
    size, extra = divmod(len(solution_ids), count)
    batches: list[list[int]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        batches.append(solution_ids[start:end])
        start = end
    return batches
