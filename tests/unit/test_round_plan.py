"""A live run's test budget and round planner (shared/core/round_plan.py), the
first-samples view of a problem, and the round's generate requests."""

from __future__ import annotations

import math
import random
import uuid

import pytest

from shared.core.allocation_rounds import (
    ALLOCATIONS,
    OrderedProblem,
    ProblemState,
    first_samples,
    revealed_state,
    round_grants,
    simulate_draw,
)
from shared.core.round_plan import (
    EXPLAIN,
    LIVE_ALLOCATIONS,
    Budget,
    Grant,
    first_round,
    helpless,
    plan_round,
)
from shared.enums import Role
from shared.messages import GenerateRequest
from shared.runs.fanout import round_requests, solution_requests
from shared.runs.rounds import start_requests
from tests.unit.test_allocation_rounds import problem, small_set

RUN = uuid.UUID(int=11)


def test_budget_checks_what_it_can_drive() -> None:
    """Gold reads labels, so it cannot run live; the first round must fit the budget
    and the cap; the budget survives its config round trip."""
    budget = Budget(total=40, first_round=2, allocation="scarce")
    budget.check(problems=20, cap=10)
    assert Budget.from_config({"budget": budget.as_config()}) == budget
    assert Budget.from_config({}) is None
    assert "gold" not in LIVE_ALLOCATIONS and "equal" in LIVE_ALLOCATIONS
    with pytest.raises(ValueError, match="cannot run live"):
        Budget(40, 2, "gold").check(20, 10)
    with pytest.raises(ValueError, match="cannot give 21 problems 2"):
        budget.check(problems=21, cap=10)
    with pytest.raises(ValueError, match="exceeds 1 test samples"):
        budget.check(problems=20, cap=1)
    with pytest.raises(ValueError, match="at least 1"):
        Budget(40, 0, "equal").check(20, 10)


def test_first_round_gives_every_problem_its_first_tests() -> None:
    assert first_round(Budget(9, 3, "equal"), 2) == [Grant(0, 3, None, "first round")] * 2


def _states(revealed: int, cap: int = 6) -> list[ProblemState]:
    return [revealed_state(first_samples(p, revealed), revealed, cap) for p in small_set()]


def test_plan_round_follows_the_simulations_rule_and_explains_it() -> None:
    """The live plan's grants are those of the simulation's rule; each carries the
    allocation's estimate and reason; the round never passes the budget."""
    states = _states(revealed=2)
    for name in LIVE_ALLOCATIONS:
        budget = Budget(total=13, first_round=2, allocation=name)
        plan = plan_round(states, budget)
        assert plan is not None
        grants = round_grants(states, 8, 13, ALLOCATIONS[name], 2)
        assert [g.granted for g in plan] == grants
        assert sum(grants) == 4  # round_units(8, 4 problems) = 4 <= 13 - 8
        assert [g.tests_before for g in plan] == [2, 2, 2, 2]
        for state, grant in zip(states, plan, strict=True):
            assert (grant.estimate, grant.reason) == EXPLAIN[name](state)
    last = plan_round(states, Budget(total=10, first_round=2, allocation="scarce"))
    assert last is not None and sum(g.granted for g in last) == 2


def test_plan_round_ends_when_the_budget_is_spent_or_every_problem_is_capped() -> None:
    assert plan_round(_states(2), Budget(8, 2, "scarce")) is None
    assert plan_round(_states(6, cap=6), Budget(100, 2, "scarce")) is None
    capped = plan_round(_states(3, cap=3) + _states(2, cap=6)[:1], Budget(100, 2, "equal"))
    assert capped is not None
    assert [g.granted for g in capped][:4] == [0, 0, 0, 0]
    assert all("at its cap of 3" in g.reason for g in capped[:4])


def test_a_problem_without_solutions_gets_nothing_but_counts_as_spent() -> None:
    """A problem with no solution sample is left out of the allocation; its samples
    count as spent."""
    dead = ProblemState(2, 2, (), (), math.nan)
    assert helpless(dead)
    states = [*_states(2), dead]
    plan = plan_round(states, Budget(total=14, first_round=2, allocation="scarce"))
    assert plan is not None
    assert plan[-1] == Grant(2, 0, None, "no solution sample: tests cannot help")
    assert sum(g.granted for g in plan) == 4
    assert plan_round(states, Budget(total=10, first_round=2, allocation="scarce")) is None


def _in_draw_order(p: OrderedProblem, draw: int) -> OrderedProblem:
    """The problem with its test samples in the order the simulation's draw reveals them."""
    order = random.Random(f"0:rounds:{p.matrix.task_id}:{draw}").sample(
        range(len(p.sample_tests)), len(p.sample_tests)
    )
    return OrderedProblem(p.matrix, tuple(p.sample_tests[k] for k in order))


@pytest.mark.parametrize("name", LIVE_ALLOCATIONS)
def test_the_live_loop_replays_the_simulation(name: str) -> None:
    """Planning round after round from what the samples asked for so far show, as the
    scorer does, gives each problem the samples one draw of the simulation gives it
    when the samples were generated in that draw's order."""
    problems = small_set()
    budget = Budget(total=16, first_round=1, allocation=name)
    (sim,) = simulate_draw(problems, ALLOCATIONS[name], [4], first_round=1, draw=3)
    ordered = [_in_draw_order(p, 3) for p in problems]
    revealed = [budget.first_round] * len(problems)
    while True:
        states = [
            revealed_state(first_samples(p, n), n, len(p.sample_tests))
            for p, n in zip(ordered, revealed, strict=True)
        ]
        plan = plan_round(states, budget)
        if plan is None:
            break
        revealed = [n + g.granted for n, g in zip(revealed, plan, strict=True)]
    assert sum(revealed) == 16
    assert tuple(revealed) == sim.tests


def test_first_samples_cuts_tests_and_passed_sets() -> None:
    p = problem("X/1", [((1, 2, 3), True), ((3,), False)], [(1,), (2, 3), (3,), ()])
    cut = first_samples(p, 2)
    assert cut.sample_tests == ((1,), (2, 3))
    assert dict(cut.matrix.test_weights) == {1: 1, 2: 1, 3: 1}
    assert [c.passed for c in cut.matrix.candidates] == [frozenset({1, 2, 3}), frozenset({3})]
    one = first_samples(p, 1)
    assert [c.passed for c in one.matrix.candidates] == [frozenset({1}), frozenset()]
    assert first_samples(p, 9) is p


def test_start_requests_with_and_without_a_budget() -> None:
    """Without a budget: n and m samples a problem; with one, the first round's tests
    for round 1 from sample 0."""
    plain = start_requests(RUN, [1, 2], 5, 7, None)
    assert [(m.problem_id, m.role, m.count) for m in plain if isinstance(m, GenerateRequest)] == [
        (1, Role.SOLUTION, 5),
        (1, Role.TEST, 7),
        (2, Role.SOLUTION, 5),
        (2, Role.TEST, 7),
    ]
    budgeted = start_requests(RUN, [1, 2], 5, 7, Budget(10, 3, "equal"))
    assert budgeted == solution_requests(RUN, [1, 2], 5) + [
        GenerateRequest(run_id=RUN, problem_id=p, role=Role.TEST, count=3, start=0, round=1)
        for p in (1, 2)
    ]


def test_test_requests_ask_for_the_samples_after_those_a_problem_has() -> None:
    assert round_requests(RUN, 3, [(1, 4, 2), (2, 6, 0)]) == [
        GenerateRequest(run_id=RUN, problem_id=1, role=Role.TEST, count=2, start=4, round=3)
    ]
