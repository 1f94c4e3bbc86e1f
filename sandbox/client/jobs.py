"""The job kinds a sandbox batch holds (what goes in), and the keys they report on.

Every kind travels in the same framing (:mod:`sandbox.client.framing`) and is
dispatched by its ``kind`` in the runner (``sandbox/coderm_runner``):

* :class:`UnittestJob` (``unittest``): a CodeRM pair, one result;
* :class:`AssertJob` (``asserts``): a solution, then CodeT checks, one result a check;
* :class:`EvalplusCheckJob` (``evalplus_check``): a solution's evalplus ground-truth
  checks against stored outputs, one result a check;
* :class:`ExpectedJob` (``evalplus_expected``): a canonical solution's outputs on its
  inputs, one result carrying them in :attr:`JobResult.value`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.core.profiles import AdaptiveLimit


@dataclass(frozen=True)
class UnittestJob:
    """A CodeRM pair: solution + unit test + driver, run as one module.

    When ``solution_chars`` is set, ``code`` is ``code[:solution_chars]`` (the solution)
    + two newlines + the test: the runner then compiles each distinct solution and test
    once, and a solution that fails on its own fails its other pairs without running
    them (see :func:`pair_job`).

    ``reference_globals``: run the module in CodeRM's executor's namespace (``unittest``,
    a fresh ``output`` StringIO and a fresh ``locals_dict``, no ``__name__``) and take
    the verdict from ``locals_dict['result']``; by default (strict) the module runs as
    ``__coderm_pair__`` and its module-level ``result`` is the verdict.
    """

    key: str
    code: str
    time_limit_s: float
    kill_after_s: float
    solution_chars: int | None = None
    adaptive: AdaptiveLimit | None = None
    reference_globals: bool = False

    def parts(self) -> tuple[str, str] | None:
        """(solution, test) if the job is split, else None."""
        n = self.solution_chars
        if n is None or self.code[n : n + 2] != "\n\n":
            return None
        return self.code[:n], self.code[n + 2 :]


def pair_job(
    key: str,
    solution: str,
    test: str,
    time_limit_s: float,
    kill_after_s: float,
    adaptive: AdaptiveLimit | None = None,
    reference_globals: bool = False,
) -> UnittestJob:
    """The unittest job of a (solution, test) pair: the module solution + two newlines + test."""
    return UnittestJob(
        key,
        f"{solution}\n\n{test}",
        time_limit_s,
        kill_after_s,
        len(solution),
        adaptive,
        reference_globals,
    )


@dataclass(frozen=True)
class AssertCheck:
    """One CodeT assert (or block of test code) run after an AssertJob's setup."""

    key: str
    code: str


@dataclass(frozen=True)
class AssertJob:
    """A solution executed once, then its checks in order, each under its own limit."""

    key: str
    setup: str
    checks: tuple[AssertCheck, ...]
    time_limit_s: float
    setup_time_limit_s: float


@dataclass(frozen=True)
class EvalplusCheck:
    """One evalplus ground-truth check: ``spec`` is the Python literal of the spec the
    runner's ``evalplus_check.check`` reads (label, inputs, expected outputs, limits)."""

    key: str
    spec: str


@dataclass(frozen=True)
class EvalplusCheckJob:
    """A solution checked against stored outputs by evalplus's rules, each check
    executing it afresh, under the assert jobs' limits. The comparison code is the
    runner's own (shipped in the image); a spec shared by a batch's solutions is sent
    once."""

    key: str
    solution: str
    checks: tuple[EvalplusCheck, ...]
    time_limit_s: float
    setup_time_limit_s: float


@dataclass(frozen=True)
class ExpectedJob:
    """A canonical solution run on its base and plus inputs (``repr`` texts of their
    lists) within ``timeout_s``; its result's ``value`` holds the outputs."""

    key: str
    task_id: str
    code: str
    entry_point: str
    dataset: str
    atol: float
    base_input: str
    plus_input: str
    output_not_none: bool
    timeout_s: float


Job = UnittestJob | AssertJob | EvalplusCheckJob | ExpectedJob
"""Any job a batch may hold."""


def job_keys(job: Job) -> list[str]:
    """The keys a job reports results under."""
    if isinstance(job, AssertJob | EvalplusCheckJob):
        return [c.key for c in job.checks]
    return [job.key]


def result_keys(jobs: Sequence[Job]) -> list[str]:
    """The keys a batch returns results for; raises ValueError on duplicates."""
    keys = [key for job in jobs for key in job_keys(job)]
    if len(set(keys)) != len(keys):
        raise ValueError("result keys in a batch must be unique")
    return keys
