"""What a run records about how its completions are sampled (``runs.config["generation"]``).

The CLI snapshots the models' sampling settings and the run's seed when it submits a
run, so that the generator samples every request of the run the same way even if a
model's registry entry changes later, and so that a run can be repeated exactly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.enums import Role


class SamplingSettings(BaseModel):
    """Sampling parameters of one role (CodeRM's defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.8, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=2048, ge=1)


class RunGeneration(BaseModel):
    """The run's seed and the sampling of each role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=0, ge=0)
    solution: SamplingSettings = SamplingSettings()
    test: SamplingSettings = SamplingSettings()

    def for_role(self, role: Role) -> SamplingSettings:
        """The sampling settings of ``role``."""
        return self.solution if role is Role.SOLUTION else self.test
