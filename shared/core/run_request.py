"""The defaults of a run request, in one place.

Every command that submits runs (``coderm run``, and ``coderm watch`` for each new
checkpoint) takes the defaults of its options from :data:`RUN_DEFAULTS` and builds
its request from a :class:`RunSettings` by keyword, so that a default changed here
changes every command alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.core.round_plan import Budget
from shared.core.run_profile import RunProfile


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How a run samples, executes and labels: everything a run request holds but
    what it runs (benchmark, policy, unit-test model) and its name.

    ``n_solutions`` / ``n_tests``: samples a problem of each role; ``problems``: only
    the first K problems (``None``: all); ``assert_time_limit_s``: seconds per assert
    test (CodeT: 0.1); ``ground_truth_time_limit_s``: seconds for a solution's hidden
    tests; ``seed``: seed of the generated samples; ``max_tokens``: tokens a
    generated sample (``None``: each model's own); ``ground_truth``: the benchmark
    whose problems label the solutions (``None``: the run's benchmark);
    ``adaptive``: the adaptive per-test limit of unittest pairs; ``profile``: whose
    semantics the run follows (:mod:`shared.core.run_profile`).

    ``test_budget``: total test samples over the run's problems, spent in rounds
    (``None``: every problem gets ``n_tests`` at once); then ``first_round``: test
    samples a problem in round 1, and ``allocation``: the rule that splits the later
    rounds (:mod:`shared.core.round_plan`); ``n_tests`` caps a problem's samples;
    ``lambdas``: pass rates predicted by task id (``coderm difficulty predict``) for the
    ``paper`` allocation.
    """

    n_solutions: int = 100
    n_tests: int = 100
    problems: int | None = None
    assert_time_limit_s: float = 0.1
    ground_truth_time_limit_s: float = 3.0
    seed: int = 0
    max_tokens: int | None = None
    ground_truth: str | None = None
    adaptive: bool = False
    profile: RunProfile = RunProfile.STRICT
    test_budget: int | None = None
    first_round: int = 1
    allocation: str = "scarce"
    lambdas: Mapping[str, float] | None = None

    def budget(self) -> Budget | None:
        """The run's test budget, ``None`` without one."""
        if self.test_budget is None:
            return None
        return Budget(self.test_budget, self.first_round, self.allocation, lambdas=self.lambdas)


RUN_DEFAULTS = RunSettings()
"""The defaults of ``coderm run`` and ``coderm watch``."""
