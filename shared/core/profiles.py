"""Execution profiles: the limits a run executes under, and the cache key they make.

An execution result is reusable exactly when the solution, the test, the sandbox's
verdict semantics, the pair's namespace and the limits are the same, so the profile
string names all of them but the code: ``sbx4/assert/t500ms-s3000ms``,
``sbx4/unittest/t1000ms-k2000ms``, with CodeRM's executor's namespace
``sbx4/unittest-ref/t1000ms-k2000ms`` or, with an adaptive limit,
``sbx4/unittest/t1000ms-k2000ms-a5x-f250ms-n3``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.enums import TestStyle

#: Version of the sandbox's verdict semantics: bump it when a verdict could change, and
#: cached results of the old semantics stop being reused (it is part of every profile).
#: 3: a pair that ran while the container's pids limit refused a fork (a sibling's fork
#: bomb) runs again alone, in an emptied container.
#: 4: pairs now see numpy and pandas (the image's Debian packages); a process a pair
#: starts before the scheduler has read the pair's pid is no longer killed as escaped;
#: evalplus ground truth runs the plus check whatever the base check gave (plus_passed).
SANDBOX_VERSION = "4"


class AdaptiveLimit(BaseModel):
    """A unittest pair's limit from the other solutions' run times on the same test.

    Once ``min_samples`` pairs of a test have finished (pass or fail) in a batch, the
    test's later pairs get ``min(time_limit_s, max(floor_s, factor x the slowest of
    them))`` instead of the full limit (evalplus bounds its limit by the reference
    solution's run time the same way), so that a looping candidate stops costing a full
    second. Verdicts then depend on the batch's other solutions: a slow but finishing
    solution can time out where the fixed limit passes it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    factor: float = Field(default=5.0, gt=0, le=1000)
    floor_s: float = Field(default=0.25, gt=0, le=60)
    min_samples: int = Field(default=3, ge=1, le=1000)

    def tag(self) -> str:
        """The adaptive part of a profile string, e.g. ``a5x-f250ms-n3``."""
        return f"a{self.factor:g}x-f{round(self.floor_s * 1000)}ms-n{self.min_samples}"


class ExecLimits(BaseModel):
    """Time limits a run executes under (stored in the run's config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    test_style: TestStyle
    time_limit_s: float = Field(gt=0, le=60)
    kill_after_s: float = Field(gt=0, le=120)
    setup_time_limit_s: float = Field(default=3.0, gt=0, le=60)
    ground_truth_time_limit_s: float = Field(default=3.0, gt=0, le=120)
    adaptive: AdaptiveLimit | None = None
    """Unittest style only: an adaptive per-test limit below ``time_limit_s``."""
    reference_globals: bool = False
    """Unittest style only: run each pair in CodeRM's executor's namespace (``unittest``,
    ``output``, ``locals_dict``; the verdict is ``locals_dict['result']``) instead of
    the strict one (a module-level ``result``)."""

    site_packages: bool | None = None
    """Whether pairs (and the run's ground-truth checks) may import the sandbox image's
    numpy and pandas; ``None``: as the test style's published tool had it (see
    :meth:`packages`)."""

    @property
    def packages(self) -> bool:
        """Whether the image's numpy and pandas are importable: by default yes for
        unittest-style runs (CodeRM's executor image has them) and no for CodeT's asserts
        (its published figures on the CodeGen-16B set were computed with the standard
        library only: a sample that imports pandas fails there)."""
        if self.site_packages is not None:
            return self.site_packages
        return self.test_style is TestStyle.UNITTEST

    def _packages_tag(self) -> str:
        """The profile suffix of a package environment other than the style's default."""
        default = self.test_style is TestStyle.UNITTEST
        if self.packages == default:
            return ""
        return "-pkgs" if self.packages else "-stdlib"

    @model_validator(mode="after")
    def _reference_globals_need_unittest(self) -> ExecLimits:
        if self.reference_globals and self.test_style is not TestStyle.UNITTEST:
            raise ValueError("reference_globals applies to unittest-style runs only")
        return self

    @classmethod
    def default_for(cls, style: TestStyle, assert_time_limit_s: float = 0.1) -> ExecLimits:
        """CodeRM's 1 s / 2 s for unittest classes; a per-assert limit for CodeT asserts."""
        if style is TestStyle.UNITTEST:
            return cls(test_style=style, time_limit_s=1.0, kill_after_s=2.0)
        return cls(
            test_style=style, time_limit_s=assert_time_limit_s, kill_after_s=assert_time_limit_s
        )

    def exec_profile(self) -> str:
        """Cache key of the run's (solution, test) executions."""
        ms = round(self.time_limit_s * 1000)
        if self.test_style is TestStyle.UNITTEST:
            kind = "unittest-ref" if self.reference_globals else "unittest"
            kill = round(self.kill_after_s * 1000)
            profile = f"sbx{SANDBOX_VERSION}/{kind}/t{ms}ms-k{kill}ms{self._packages_tag()}"
            return profile if self.adaptive is None else f"{profile}-{self.adaptive.tag()}"
        setup = round(self.setup_time_limit_s * 1000)
        return f"sbx{SANDBOX_VERSION}/assert/t{ms}ms-s{setup}ms{self._packages_tag()}"

    def ground_truth_profile(self, suite: str) -> str:
        """Cache key of ground-truth labels with the benchmark's own tests (``suite``),
        run in the run's package environment (``-pkgs``: numpy and pandas importable)."""
        ms = round(self.ground_truth_time_limit_s * 1000)
        return f"sbx{SANDBOX_VERSION}/gt-{suite}/t{ms}ms{'-pkgs' if self.packages else ''}"
