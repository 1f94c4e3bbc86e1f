"""Plain data types of the offline analyses (pure, no I/O).

A report module loads each problem's stored matrix into a :class:`ProblemMatrix` and
hands the run's tuple of them to the pure functions of
:mod:`shared.core.strategies`, :mod:`shared.core.metrics`,
:mod:`shared.core.scaling` and :mod:`shared.core.allocation`, which return the
dataclasses below, ready to render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared.core.strategies import Candidate

TestDrawMode = Literal["coderm", "samples"]
"""How a draw of m test *samples* maps to the problem's unique tests.

``"coderm"``: as ``calculate_result.py``, which deduplicates the tests at extraction
and then draws ``ut_num`` indices out of ``range(100)`` (the test samples): the U
unique tests occupy one slot each and the remaining ``test_samples - U`` slots
(duplicates, samples that yielded no test) are empty, failed by every solution. A
drawn test has multiplicity 1.

``"samples"``: one slot per test *occurrence*: a unique test owns as many slots as
samples yielded it (``test_weights``), plus ``test_samples - sum(weights)`` empty
slots when that is positive. A drawn test's multiplicity (CodeT's weight) is the
number of its slots drawn. Drawing every slot gives back the full weights, so the
curve's last point equals the stored selection.
"""

SolutionDrawMode = Literal["prefix", "bootstrap"]
"""``"prefix"``: the first n samples in sample order (CodeRM's ``sol_ids[:sol_num]``,
deterministic); ``"bootstrap"``: n samples drawn without replacement per draw."""


@dataclass(frozen=True)
class ProblemMatrix:
    """One problem's complete pass/fail matrix as stored for a run.

    ``candidates``: the solution samples in sample order (``sample_index``), samples
    without code included (``solution_id=None``). ``test_weights``: unique test id ->
    number of test occurrences yielding it (a unit-test completion yields at most
    one test; a CodeT assert completion up to five). ``test_samples``: number of
    unit-test completions, including those that yielded no test.
    """

    problem_id: int
    task_id: str
    candidates: tuple[Candidate, ...]
    test_weights: Mapping[int, int]
    test_samples: int

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError(f"problem {self.task_id} has no solution samples")
        if self.test_samples < 0 or any(w < 1 for w in self.test_weights.values()):
            raise ValueError(f"problem {self.task_id}: bad test counts")

    @property
    def tests(self) -> tuple[int, ...]:
        """The unique test ids, sorted."""
        return tuple(sorted(self.test_weights))

    @property
    def pass_rate(self) -> float:
        """The vanilla pass rate lambda = correct samples / samples."""
        return sum(1 for c in self.candidates if c.correct) / len(self.candidates)


@dataclass(frozen=True)
class DifficultyBucket:
    """A pass-rate decile: ``index`` 0..9 covers ``[index/10, (index+1)/10)``, the last
    one ``[0.9, 1.0]`` (closed). A problem with c correct of n samples falls in
    ``min(10 * c // n, 9)`` (integer arithmetic, no float edge effects)."""

    index: int

    @property
    def label(self) -> str:
        """``"[0.0,0.1)"`` ... ``"[0.9,1.0]"``."""
        lo, hi = self.index / 10, (self.index + 1) / 10
        return f"[{lo:.1f},{hi:.1f}]" if self.index == 9 else f"[{lo:.1f},{hi:.1f})"


ALL_PROBLEMS = "all"
"""The ``bucket`` of a curve point computed over every problem."""


@dataclass(frozen=True)
class CurvePoint:
    """One point of a scaling curve.

    ``axis``: ``"tests"`` (m grows) or ``"solutions"`` (n grows); ``size`` the
    requested m or n; ``strategy`` a selection strategy name (``coderm_majority``,
    ``codet``, ``first_max``, ``mbr_exec``, and the references ``vanilla``,
    ``oracle``); ``bucket`` :data:`ALL_PROBLEMS` or a
    :attr:`DifficultyBucket.label`. ``accuracy`` is the
    mean over draws of the run accuracy (mean over the bucket's problems of the
    strategy's pass@1), in [0, 1]; ``stdev`` the population standard deviation of
    the run accuracy over the draws (0 for one draw); ``capped`` the number of
    problems with fewer than ``size`` slots, scored with all they have.
    """

    axis: Literal["tests", "solutions"]
    size: int
    strategy: str
    bucket: str
    accuracy: float
    stdev: float
    problems: int
    draws: int
    capped: int


@dataclass(frozen=True)
class AllocationPoint:
    """Accuracy at one total budget for one allocation rule (CodeRM section 3.2).

    ``rule``: ``"equal"``, ``"gold"`` (lambda = true pass rate) or ``"estimated"``
    (lambda from a first round of tests); ``budget`` the total number of test slots
    over all problems; ``per_problem`` ``budget / problems``; ``accuracy`` the mean
    over problems of the expected majority-vote pass@1 with the allocated tests.
    """

    rule: Literal["equal", "gold", "estimated"]
    budget: int
    per_problem: float
    accuracy: float
    problems: int
