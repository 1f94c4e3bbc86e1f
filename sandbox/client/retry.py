"""The one retry policy for sandbox batches, used by every caller of the sandbox.

A batch gets at most :data:`SANDBOX_ATTEMPTS` container runs here:

* a run that breaks (:class:`SandboxError`: the container could not be created, timed
  out, exited non-zero, its output was incomplete) is followed by a run of the whole
  batch again;
* a run that finishes but gave some jobs ``sandbox_error`` (the runner failed on them,
  not the candidate code) is followed by a run of those jobs alone, whose results
  replace theirs (a broken run of those jobs leaves theirs as they were).

When no run of the whole batch finished within the attempts, :class:`SandboxError` is
raised (carrying every run's timings); ``sandbox_error`` results left after the last
attempt are returned as such, never as a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sandbox.client.container import Progress
from sandbox.client.jobs import Job, job_keys
from sandbox.client.results import BatchResult, JobResult, SandboxError, Timings
from shared.enums import Outcome

SANDBOX_ATTEMPTS = 2
"""Container runs a batch gets from :func:`run_with_retries`, the first included.

How it composes with the broker: the executor's handlers (``ExecuteBatch``, and
``compute_expected`` for expected outputs) run each delivery of a message through
:func:`run_with_retries`; when that raises, the handler fails and the broker
redelivers the message from its delay queues, up to ``shared.broker.MAX_ATTEMPTS``
(5) deliveries in all before it dead-letters it. So the worst case, a batch whose
sandbox keeps breaking, costs ``SANDBOX_ATTEMPTS x MAX_ATTEMPTS`` = 2 x 5 = 10
container runs (with 2 s + 4 s + 8 s + 16 s of back-off between deliveries). A runner
that keeps failing on some jobs costs 2 runs (the second holding only those jobs), and
their ``sandbox_error`` results are stored as such. ``coderm exec-pairs`` has no broker:
a batch costs at most ``SANDBOX_ATTEMPTS`` = 2 container runs, after which its pairs
that got no verdict are reported as ``sandbox_error``.
"""


class BatchRunner(Protocol):
    """What runs one batch in one container (:class:`~sandbox.client.container.DockerSandbox`)."""

    async def run_batch(
        self, jobs: Sequence[Job], progress: Progress | None = None, site_packages: bool = True
    ) -> BatchResult:
        """One container run of ``jobs``; SandboxError when it broke."""
        ...


def _broken(jobs: Sequence[Job], results: dict[str, JobResult]) -> list[Job]:
    """The jobs with a ``sandbox_error`` among their results."""
    return [
        job
        for job in jobs
        if any(results[k].outcome is Outcome.SANDBOX_ERROR for k in job_keys(job))
    ]


async def run_with_retries(
    sandbox: BatchRunner,
    jobs: Sequence[Job],
    progress: Progress | None = None,
    site_packages: bool = True,
) -> BatchResult:
    """Run ``jobs`` by the module's policy: the results of each job's last finished run,
    the timings of every run summed, and why runs were repeated.

    Raises :class:`SandboxError` only when no run of the whole batch finished.
    ``progress(n)``: results received so far by the current run of the whole batch (it
    starts again from 0 when a broken run is repeated; a run of only the jobs that got
    ``sandbox_error`` does not report progress).
    """
    timings = Timings()
    retried: list[str] = []
    results: dict[str, JobResult] | None = None
    todo: Sequence[Job] = jobs
    for attempt in range(1, SANDBOX_ATTEMPTS + 1):
        whole = results is None
        try:
            run = await sandbox.run_batch(
                todo, progress if whole else None, site_packages=site_packages
            )
        except SandboxError as exc:
            timings += exc.timings
            if results is None and attempt == SANDBOX_ATTEMPTS:
                exc.timings = timings
                raise
            retried.append(f"attempt {attempt}: {exc}"[:500])
            continue
        timings += run.timings
        results = run.results if results is None else {**results, **run.results}
        todo = _broken(todo, run.results)
        if not todo:
            break
        if attempt < SANDBOX_ATTEMPTS:
            retried.append(f"attempt {attempt}: sandbox_error in {len(todo)} jobs")
    if results is None:  # pragma: no cover - the loop raised
        raise SandboxError("no sandbox attempt finished", timings)
    return BatchResult(results, timings, tuple(retried))
