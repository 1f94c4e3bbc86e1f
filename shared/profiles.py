"""Execution profiles: the limits a run executes under, and the cache key they make.

An execution result is reusable exactly when the solution, the test, the sandbox's
verdict semantics and the limits are the same, so the profile string names all of
them but the code: ``sbx1/assert/t500ms`` or ``sbx1/unittest/t1000ms-k2000ms``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.enums import TestStyle

#: Version of the sandbox's verdict semantics: bump it when a verdict could change, and
#: cached results of the old semantics stop being reused (it is part of every profile).
SANDBOX_VERSION = "1"


class ExecLimits(BaseModel):
    """Time limits a run executes under (stored in the run's config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    test_style: TestStyle
    time_limit_s: float = Field(gt=0, le=60)
    kill_after_s: float = Field(gt=0, le=120)
    setup_time_limit_s: float = Field(default=3.0, gt=0, le=60)
    ground_truth_time_limit_s: float = Field(default=3.0, gt=0, le=120)

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
            return f"sbx{SANDBOX_VERSION}/unittest/t{ms}ms-k{round(self.kill_after_s * 1000)}ms"
        return f"sbx{SANDBOX_VERSION}/assert/t{ms}ms-s{round(self.setup_time_limit_s * 1000)}ms"

    def ground_truth_profile(self, suite: str) -> str:
        """Cache key of ground-truth labels with the benchmark's own tests (``suite``)."""
        ms = round(self.ground_truth_time_limit_s * 1000)
        return f"sbx{SANDBOX_VERSION}/gt-{suite}/t{ms}ms"
