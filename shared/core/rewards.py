"""Rewards of responses from their unit-test verdicts (pure, no I/O).

An RL trainer asks for a reward of each response (rollout) to a problem; the problem's
test bank holds its unit tests, each with a weight (how many test samples yielded it,
CodeT's weight). A response's code either passed or failed each test. From that:

- ``pass_fraction``: tests passed / tests in the bank (0 without code);
- ``all_pass``: 1 when it passed every test of a non-empty bank, else 0;
- ``majority``: 1 when CodeRM's majority voting over the response's *group* (the
  responses to the same prompt in one request, GRPO's group) keeps it: among the
  responses passing the most tests, those whose passed set is the most common. 0 when
  no response of the group passes any test (then the vote says nothing);
- ``codet``: CodeT's dual agreement score of the response's consensus set (the
  responses with the same passed set: summed weights of its tests x sqrt(its size)),
  divided by the group's top score, so 1 for the top set and 0 for a response passing
  nothing.

A response alone is a group of one: its ``majority`` is then 1 whenever it passes any
test, and its ``codet`` is 1 likewise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REWARD_NAMES = ("pass_fraction", "all_pass", "majority", "codet")
"""The rewards of a response, by name."""


@dataclass(frozen=True)
class Verdicts:
    """One response's results against its problem's bank: ``has_code`` (a response
    without code passes nothing) and the ids of the bank tests it passed."""

    has_code: bool
    passed: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Reward:
    """A response's rewards (:data:`REWARD_NAMES`), with the tests run and passed."""

    tests_run: int
    tests_passed: int
    pass_fraction: float
    all_pass: float
    majority: float
    codet: float

    def as_dict(self) -> dict[str, float]:
        """The rewards by name."""
        return {name: float(getattr(self, name)) for name in REWARD_NAMES}


def _codet_scores(group: Sequence[Verdicts], weights: Mapping[int, int]) -> list[float]:
    sizes = Counter(v.passed for v in group if v.has_code and v.passed)
    raw = [
        sum(weights.get(t, 1) for t in v.passed) * math.sqrt(sizes[v.passed])
        if v.has_code and v.passed
        else 0.0
        for v in group
    ]
    top = max(raw, default=0.0)
    return [score / top if top > 0 else 0.0 for score in raw]


def _majority(group: Sequence[Verdicts]) -> list[float]:
    passed = [v.passed if v.has_code else frozenset() for v in group]
    top = max((len(p) for p in passed), default=0)
    if top == 0:
        return [0.0] * len(group)
    consistency = Counter(p for p in passed if len(p) == top)
    best = max(consistency.values())
    return [1.0 if len(p) == top and consistency[p] == best else 0.0 for p in passed]


def group_rewards(
    group: Sequence[Verdicts], bank: Sequence[int], weights: Mapping[int, int]
) -> list[Reward]:
    """The rewards of each response of one group against the same ``bank`` (test ids)
    with their ``weights``; ``ValueError`` when a response passed a test not in the
    bank."""
    tests = frozenset(bank)
    for v in group:
        if not v.passed <= tests:
            raise ValueError(f"passed tests outside the bank: {sorted(v.passed - tests)}")
    majority = _majority(group)
    codet = _codet_scores(group, weights)
    out = []
    for v, m, c in zip(group, majority, codet, strict=True):
        run = len(tests) if v.has_code else 0
        passed = len(v.passed) if v.has_code else 0
        out.append(
            Reward(
                tests_run=run,
                tests_passed=passed,
                pass_fraction=passed / len(tests) if tests and v.has_code else 0.0,
                all_pass=1.0 if tests and v.has_code and passed == len(tests) else 0.0,
                majority=m,
                codet=c,
            )
        )
    return out
