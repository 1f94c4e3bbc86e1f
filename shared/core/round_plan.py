"""A live run's test budget and the plan of its next round (pure, no I/O).

A run with a test budget (``coderm run --test-budget B --first-round M0 --allocation
NAME``) works in rounds. Round 1 asks every problem for ``M0`` test samples; when every
problem of a round is scored, the planner (:func:`plan_round`) looks at what the
executions so far show (:func:`~shared.core.allocation_rounds.revealed_state`), and the
allocation splits the next round's units among the problems by the same rule as the
offline simulation (:func:`~shared.core.allocation_rounds.round_grants`), so that
``coderm simulate-allocation`` on a finished run predicts what a live run with that
budget does. The run ends when the budget is spent or no problem can take another test
sample (every one at the run's ``n_tests``).

Every grant carries the allocation's estimate for the problem and why it got what it
got, in words (:data:`EXPLAIN`), which the round tables store and the report shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.core.allocation_rounds import (
    ALLOCATIONS,
    ProblemState,
    at_random,
    paper_lambda,
    pick_flip_rate,
    pick_margin,
    pick_moves,
    picks_disagree,
    round_grants,
    separating_tests,
)

LIVE_ALLOCATIONS: tuple[str, ...] = tuple(name for name in ALLOCATIONS if name != "gold")
"""The allocations a live run may use: all but ``gold``, which reads labels."""


@dataclass(frozen=True)
class Budget:
    """A run's test budget: ``total`` test samples over all its problems, ``first_round``
    samples a problem in round 1, the ``allocation`` that splits the later rounds, and
    ``per_doubling`` (a later round adds 1 / per_doubling of the average spent so far,
    so the budget doubles in about that many rounds)."""

    total: int
    first_round: int
    allocation: str
    per_doubling: int = 4
    lambdas: Mapping[str, float] | None = None
    """Predicted pass rates by task id (``coderm difficulty predict``), which ``paper``
    uses instead of its estimate from the executions."""

    def check(self, problems: int, cap: int) -> None:
        """``ValueError`` with the reason when the budget cannot drive a run of
        ``problems`` problems with at most ``cap`` test samples each."""
        if self.allocation not in LIVE_ALLOCATIONS:
            known = ", ".join(LIVE_ALLOCATIONS)
            raise ValueError(f"allocation {self.allocation!r} cannot run live; one of {known}")
        if self.first_round < 1 or self.per_doubling < 1:
            raise ValueError("the first round and per-doubling must be at least 1")
        if self.first_round > cap:
            raise ValueError(f"first round {self.first_round} exceeds {cap} test samples a problem")
        if self.lambdas is not None and self.allocation != "paper":
            raise ValueError("predicted pass rates are for the paper allocation")
        if self.lambdas is not None and any(not 0 <= v <= 1 for v in self.lambdas.values()):
            raise ValueError("a predicted pass rate outside [0, 1]")
        if self.total < self.first_round * problems:
            raise ValueError(
                f"budget {self.total} cannot give {problems} problems {self.first_round} "
                "test samples each in the first round"
            )

    def as_config(self) -> dict[str, Any]:
        """The budget as stored in ``runs.config["budget"]``."""
        config: dict[str, Any] = {
            "total": self.total,
            "first_round": self.first_round,
            "allocation": self.allocation,
            "per_doubling": self.per_doubling,
        }
        if self.lambdas is not None:
            config["lambdas"] = dict(self.lambdas)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Budget | None:
        """The budget of a run's config, ``None`` for a run without one."""
        raw = config.get("budget")
        if not raw:
            return None
        return cls(
            total=int(raw["total"]),
            first_round=int(raw["first_round"]),
            allocation=str(raw["allocation"]),
            per_doubling=int(raw.get("per_doubling", 4)),
            lambdas=raw.get("lambdas"),
        )


Explain = Callable[[ProblemState], tuple[float, str]]
"""``state -> (estimate, why)``: the quantity an allocation ranks a problem by, and it
in words."""


def _equal(state: ProblemState) -> tuple[float, str]:
    return float(state.revealed), f"{state.revealed} test samples so far (fewest first)"


def _paper(state: ProblemState) -> tuple[float, str]:
    lam = paper_lambda(state)
    kind = "probe's lambda" if state.predicted is not None else "lambda-hat"
    return lam, f"{kind} {lam:.2f}: gain {lam * (1 - lam) ** state.revealed:.3f}"


def _margin(state: ProblemState) -> tuple[float, str]:
    m = pick_margin(state)
    return m, f"CodeT runner-up / top {m:.2f}"


def _flip(state: ProblemState) -> tuple[float, str]:
    rate = pick_flip_rate(state)
    return rate, f"pick moved by {pick_moves(state)} of {2 * state.revealed} leave-one-outs"


def _disagree(state: ProblemState) -> tuple[float, str]:
    d = picks_disagree(state)
    return float(d), "majority and CodeT disagree" if d else "majority and CodeT agree"


def _settled(state: ProblemState) -> tuple[float, str]:
    moves = pick_moves(state)
    return float(moves), "a test sample moved the pick" if moves else "no test sample moved it"


def _starved(state: ProblemState) -> tuple[float, str]:
    r = at_random(state)
    return float(r), "still a random pick" if r else "tests separate its samples"


def _scarce(state: ProblemState) -> tuple[float, str]:
    n = separating_tests(state)
    return n, f"{n} separating tests: weight {1 / math.sqrt(1 + n):.2f}"


def _gold(state: ProblemState) -> tuple[float, str]:
    return state.pass_rate, f"true pass rate {state.pass_rate:.2f}"


EXPLAIN: Mapping[str, Explain] = {
    "equal": _equal,
    "gold": _gold,
    "paper": _paper,
    "margin": _margin,
    "flip": _flip,
    "disagree": _disagree,
    "settled": _settled,
    "starved": _starved,
    "scarce": _scarce,
}
"""Each allocation's estimate of a problem and its reason, by allocation name."""


@dataclass(frozen=True)
class Grant:
    """One problem's part of a round: ``tests_before`` test samples asked for before
    it, ``granted`` in it, the allocation's ``estimate`` (``None`` in round 1) and
    ``reason``."""

    tests_before: int
    granted: int
    estimate: float | None
    reason: str


def first_round(budget: Budget, problems: int) -> list[Grant]:
    """Round 1: ``first_round`` test samples for every problem."""
    return [Grant(0, budget.first_round, None, "first round") for _ in range(problems)]


def helpless(state: ProblemState) -> bool:
    """Whether no test can help a problem: it has no solution sample (the offline
    simulation leaves such problems out too)."""
    return not state.seen


def plan_round(states: Sequence[ProblemState], budget: Budget) -> list[Grant] | None:
    """The next round's grant of every problem, ``None`` when the run is done (its
    budget spent, or no problem with room for another test sample).

    ``states[i]`` is problem i after the rounds so far. The spent budget is the sum of
    the samples asked for so far; a problem no test can help (:func:`helpless`) counts
    its samples as spent and gets no more.
    """
    spent = sum(s.revealed for s in states)
    live = [s for s in states if not helpless(s)]
    if spent >= budget.total or not any(s.room for s in live):
        return None
    grants = round_grants(
        live,
        spent - sum(s.revealed for s in states if helpless(s)),
        budget.total - sum(s.revealed for s in states if helpless(s)),
        ALLOCATIONS[budget.allocation],
        budget.first_round,
        budget.per_doubling,
    )
    if not any(grants):
        return None
    explain = EXPLAIN[budget.allocation]
    given = iter(grants)
    out: list[Grant] = []
    for state in states:
        if helpless(state):
            out.append(Grant(state.revealed, 0, None, "no solution sample: tests cannot help"))
            continue
        granted = next(given)
        estimate, why = explain(state)
        if not state.room:
            why = f"at its cap of {state.cap} test samples"
        out.append(Grant(state.revealed, granted, estimate, why))
    return out
