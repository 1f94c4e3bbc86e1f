"""How a benchmark's problems label a solution correct, shared by the CLI, executor and scorer.

``Problem.ground_truth`` names the kind:

* ``tests``: HumanEval's own ``test`` code, then ``check(entry_point)``;
* ``outputs``: evalplus differential testing (HumanEval+, MBPP+): the solution's outputs on
  ``base_input`` then ``plus_input`` are compared with the canonical solution's, which were
  computed once in the sandbox at import and stored in ``Problem.oracle`` (:class:`Oracle`);
* ``none``: no hidden tests are available (LiveCodeBench offline): runs still execute and
  select, but report no correctness figure. An evalplus problem whose canonical solution
  cannot run within the sandbox's limits is unlabelled the same way (``Oracle.unavailable``).

A run records whose ground truth it uses in ``config["ground_truth"]``
(:class:`RunGroundTruth`): by default its own benchmark's, or another benchmark's problems
with the same task ids (the CodeT HumanEval set scored with HumanEval+).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.profiles import SANDBOX_VERSION

#: Version of the output-comparison rules (``sandbox/coderm_runner/evalplus_check.py``): bump
#: it when a verdict could change, and labels of the old rules stop being reused.
ORACLE_VERSION = "1"

#: evalplus's defaults (``evalplus/config.py``): an input's limit is
#: ``max(GT_MIN_TIME_S, GT_TIME_FACTOR x canonical time)``; a check's total is capped at
#: ``min(GT_MAX_TOTAL_S, sum of limits) + GT_TOTAL_SLACK_S`` (``untrusted_check``).
GT_TIME_FACTOR = 4.0
GT_MIN_TIME_S = 1.0
GT_MAX_TOTAL_S = 60.0
GT_TOTAL_SLACK_S = 2.0


class GroundTruthKind(StrEnum):
    """How a problem's solutions are labelled (``Problem.ground_truth``)."""

    TESTS = "tests"
    OUTPUTS = "outputs"
    NONE = "none"


class Expected(BaseModel):
    """The canonical solution's outputs (``repr`` text of a list) and per-input times.

    An output too large to ship with every check is ``None`` in the list and its digest
    (``sandbox/coderm_runner/evalplus_check.py``) is under its index in ``*_digests``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str
    plus: str
    base_ms: list[float]
    plus_ms: list[float]
    base_digests: dict[str, str] = {}
    plus_digests: dict[str, str] = {}


class Oracle(BaseModel):
    """An evalplus problem's differential-testing data (``Problem.oracle``).

    Inputs are the ``repr`` text of a list of argument lists, after evalplus's own
    deserialisation (MBPP+'s tuples, sets, complex numbers); ``expected`` is filled once
    the canonical solution ran in the sandbox. ``dataset`` selects evalplus's special
    oracles; ``output_not_none`` marks MBPP+ tasks whose expected output is only
    ``output is not None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: Literal["humaneval", "mbpp"]
    atol: float = Field(ge=0)
    output_not_none: bool = False
    base_input: str
    plus_input: str
    base_count: int = Field(ge=0)
    plus_count: int = Field(ge=0)
    expected: Expected | None = None
    unavailable: str | None = None
    """Why the canonical solution's outputs could not be computed within the sandbox's
    limits (the problem then has no ground truth); ``None`` if they were, or were never
    tried."""


class RunGroundTruth(BaseModel):
    """Which benchmark labels a run's solutions (``Run.config["ground_truth"]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    benchmark: str
    benchmark_id: int
    kind: GroundTruthKind


def run_ground_truth(config: Mapping[str, Any]) -> RunGroundTruth | None:
    """The run's ground-truth source, or ``None`` for runs created before it was recorded
    (those are labelled by their own problems, as the problem's kind says)."""
    raw = config.get("ground_truth")
    return None if raw is None else RunGroundTruth.model_validate(raw)


def outputs_profile(suite: str, packages: bool = True) -> str:
    """Cache key of evalplus-style labels against ``suite``'s stored outputs: the sandbox
    semantics, the comparison rules, evalplus's time-limit rule and the package
    environment (``-stdlib``: the image's numpy and pandas not importable)."""
    return (
        f"sbx{SANDBOX_VERSION}/gt-{suite}/evalplus{ORACLE_VERSION}"
        f"-x{GT_TIME_FACTOR:g}-min{round(GT_MIN_TIME_S * 1000)}ms{'' if packages else '-stdlib'}"
    )


def unlabelled_profile(suite: str) -> str:
    """Profile of a run whose benchmark has no hidden tests (no label is ever stored)."""
    return f"sbx{SANDBOX_VERSION}/gt-{suite}/none"


def input_limits(times_ms: list[float]) -> list[float]:
    """evalplus's per-input limits in seconds: ``max(1 s, 4 x canonical time)``."""
    return [max(GT_MIN_TIME_S, GT_TIME_FACTOR * ms / 1000.0) for ms in times_ms]


def check_budget(limits: list[float]) -> float:
    """evalplus's wall budget for one check (base or plus) in seconds: the process is
    killed after ``min(60, sum of limits) + 1`` s plus one more second of ``join``."""
    return min(GT_MAX_TOTAL_S, sum(limits)) + GT_TOTAL_SLACK_S
