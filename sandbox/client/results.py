"""What a sandbox batch gives back: one :class:`JobResult` a key, the batch's
:class:`Timings`, both in a :class:`BatchResult`; :class:`SandboxError` when the sandbox
itself broke."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from shared.enums import Outcome


@dataclass(frozen=True)
class JobResult:
    """The verdict for one unittest job, assert or evalplus check, or expected-outputs
    job (whose ``value`` holds the outputs, or the reason there are none)."""

    key: str
    outcome: Outcome
    tests_run: int | None
    tests_passed: int | None
    duration_ms: float | None
    detail: str | None
    value: dict[str, Any] | None = None


@dataclass(frozen=True)
class Timings:
    """Where a batch's time went, summed over the container runs it took.

    ``create_s``, ``run_s``, ``delete_s``, ``total_s``: the phases' wall seconds;
    ``cpu_s``: CPU seconds the runners reported (0 for a run that ended without its end
    marker); ``containers``: container runs (created containers).
    """

    create_s: float = 0.0
    run_s: float = 0.0
    delete_s: float = 0.0
    total_s: float = 0.0
    cpu_s: float = 0.0
    containers: int = 0

    def __add__(self, other: Timings) -> Timings:
        return Timings(
            self.create_s + other.create_s,
            self.run_s + other.run_s,
            self.delete_s + other.delete_s,
            self.total_s + other.total_s,
            self.cpu_s + other.cpu_s,
            self.containers + other.containers,
        )

    def as_dict(self) -> dict[str, float]:
        """The figures by name, rounded to milliseconds (for logs and reports)."""
        return {
            "create": round(self.create_s, 3),
            "run": round(self.run_s, 3),
            "delete": round(self.delete_s, 3),
            "total": round(self.total_s, 3),
            "cpu": round(self.cpu_s, 3),
            "containers": self.containers,
        }


@dataclass(frozen=True)
class BatchResult:
    """A batch's results by key, what running it cost, and the failures of attempts
    that were run again (:func:`sandbox.client.retry.run_with_retries`)."""

    results: dict[str, JobResult]
    timings: Timings = field(default_factory=Timings)
    retried: tuple[str, ...] = ()


class SandboxError(Exception):
    """The sandbox broke (not the candidate code): the batch may be retried.

    ``timings``: what the failed container runs cost.
    """

    def __init__(self, message: str, timings: Timings | None = None) -> None:
        super().__init__(message)
        self.timings = timings if timings is not None else Timings()


class RunClock:
    """The phases of one sandbox run (a container, or a bubblewrap process in its
    cgroup), as they end: create, run, delete, and the CPU seconds it used."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.create = self.run = self.delete = self.cpu = 0.0
        self.created = False

    def timings(self) -> Timings:
        """The phases so far, with the total since the clock started."""
        total = time.monotonic() - self.start
        return Timings(self.create, self.run, self.delete, total, self.cpu, int(self.created))
