"""The Prometheus metrics the services count into, and the calls that count.

Every metric is named ``coderm_...`` and carries a ``service`` label: the service the
process runs (``generator``, ``extractor``, ``executor``, ``scorer``), set once by
``shared.service.serve`` through :func:`set_service` (empty in any other process).
Replicas of a service are told apart by the ``instance`` label Prometheus adds.
``queue`` is a work queue's kind (``generate``, ``extract``, ``execute``, ``score``,
``expected``: RabbitMQ's ``<prefix>.<kind>``), so rules hold whatever the queue prefix.

The objects live in ``prometheus_client``'s default registry, which the service's
``/metrics`` endpoint (:mod:`shared.observability.server`) renders together with the
gauges it reads from the broker and the database when scraped. The list, with what
each metric means, is in docs/OBSERVABILITY.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import Counter, Histogram, disable_created_metrics

# No ``*_created`` series beside every counter and histogram: Prometheus would store
# each as a gauge of its own, and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

_service = ""


def set_service(name: str) -> None:
    """Name the service this process runs (the ``service`` label of its metrics)."""
    global _service
    _service = name


def service() -> str:
    """The ``service`` label of this process's metrics."""
    return _service


MESSAGES_HANDLED = Counter(
    "coderm_messages_handled",
    "Messages whose handler returned (the message was acked).",
    ["service", "queue"],
)
MESSAGES_FAILED = Counter(
    "coderm_messages_failed",
    "Handler runs that raised (the message was then retried or dead-lettered).",
    ["service", "queue"],
)
MESSAGES_RETRIED = Counter(
    "coderm_messages_retried",
    "Copies of failed messages published (and confirmed) to a delay queue for a retry.",
    ["service", "queue"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "coderm_messages_dead_lettered",
    "Messages copied (and confirmed) to their dead-letter queue: invalid, failed "
    "permanently, or out of attempts.",
    ["service", "queue"],
)
HANDLER_SECONDS = Histogram(
    "coderm_handler_seconds",
    "Time a handler took on one delivery, by outcome (ok: returned, failed: raised).",
    ["service", "queue", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
PAIRS_EXECUTED = Counter(
    "coderm_pairs_executed",
    "(solution, unit test) pairs run in a sandbox and stored, by outcome.",
    ["service", "outcome"],
)
SANDBOX_STARTS = Counter(
    "coderm_sandbox_starts",
    "Sandbox container runs started (a batch's retries included).",
    ["service"],
)
SANDBOX_FAILURES = Counter(
    "coderm_sandbox_failures",
    "Sandbox container runs that broke (SandboxError: not created, timed out, "
    "exited non-zero, incomplete output).",
    ["service"],
)
GENERATION_TOKENS = Counter(
    "coderm_generation_tokens",
    "Tokens of generated samples by model: kind=prompt (once per request) or "
    "kind=completion (every sample's own).",
    ["service", "model", "kind"],
)
GENERATED_SAMPLES = Counter(
    "coderm_generated_samples",
    "Samples a model generated.",
    ["service", "model"],
)

OK = "ok"
FAILED = "failed"


def consuming(queue: str) -> None:
    """Start the message counters of ``queue`` at zero, so that a rate or an increase
    over them holds from the first message on (a labelled series exists only once it
    was touched)."""
    for counter in (MESSAGES_HANDLED, MESSAGES_FAILED, MESSAGES_RETRIED, MESSAGES_DEAD_LETTERED):
        counter.labels(_service, queue)


def handler_returned(queue: str, seconds: float) -> None:
    """A handler of ``queue`` returned after ``seconds``."""
    MESSAGES_HANDLED.labels(_service, queue).inc()
    HANDLER_SECONDS.labels(_service, queue, OK).observe(seconds)


def handler_raised(queue: str, seconds: float) -> None:
    """A handler of ``queue`` raised after ``seconds``."""
    MESSAGES_FAILED.labels(_service, queue).inc()
    HANDLER_SECONDS.labels(_service, queue, FAILED).observe(seconds)


def retried(queue: str) -> None:
    """The broker confirmed a retry copy of a message of ``queue``."""
    MESSAGES_RETRIED.labels(_service, queue).inc()


def dead_lettered(queue: str) -> None:
    """The broker confirmed a dead-letter copy of a message of ``queue``."""
    MESSAGES_DEAD_LETTERED.labels(_service, queue).inc()


def pairs_executed(outcomes: Iterable[object]) -> None:
    """Pairs were executed and stored with these outcomes (``shared.enums.Outcome``)."""
    counted: dict[str, int] = {}
    for outcome in outcomes:
        counted[str(outcome)] = counted.get(str(outcome), 0) + 1
    for outcome, count in counted.items():
        PAIRS_EXECUTED.labels(_service, outcome).inc(count)


class _Sample(Protocol):
    """What a generated sample tells of its cost."""

    @property
    def prompt_tokens(self) -> int | None: ...

    @property
    def completion_tokens(self) -> int | None: ...


def generated(model: str, samples: Sequence[_Sample]) -> None:
    """One request to ``model`` gave ``samples``: their prompt is counted once (every
    sample of a request reports the same prompt), their completion tokens each."""
    prompt = max((s.prompt_tokens or 0 for s in samples), default=0)
    completion = sum(s.completion_tokens or 0 for s in samples)
    GENERATION_TOKENS.labels(_service, model, "prompt").inc(prompt)
    GENERATION_TOKENS.labels(_service, model, "completion").inc(completion)
    GENERATED_SAMPLES.labels(_service, model).inc(len(samples))


R = TypeVar("R", covariant=True)


class BatchRunner(Protocol[R]):
    """Anything that runs a batch in one sandbox container (``DockerSandbox``)."""

    def run_batch(
        self, jobs: Any, progress: Any = None, site_packages: bool = True
    ) -> Awaitable[R]: ...


class CountedSandbox(Generic[R]):
    """A sandbox whose container runs are counted: every ``run_batch`` is a start, and
    one that raises (the sandbox broke) a failure. Hand it to
    ``sandbox.client.run_with_retries`` in place of the sandbox."""

    def __init__(self, sandbox: BatchRunner[R]) -> None:
        self.sandbox = sandbox

    async def run_batch(self, jobs: Any, progress: Any = None, site_packages: bool = True) -> R:
        """Run ``jobs`` in the wrapped sandbox, counting the start and any failure."""
        SANDBOX_STARTS.labels(_service).inc()
        try:
            return await self.sandbox.run_batch(jobs, progress, site_packages=site_packages)
        except Exception:
            SANDBOX_FAILURES.labels(_service).inc()
            raise
