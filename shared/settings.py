"""Settings groups shared by the services, read from ``CODERM_*`` environment variables.

Nested groups use ``__``: ``CODERM_DATABASE__URL``, ``CODERM_BROKER__URL``,
``CODERM_SANDBOX__IMAGE``. Secrets are ``SecretStr`` so they never reach a log line.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseModel):
    """PostgreSQL connection (SQLAlchemy async URL with the asyncpg driver)."""

    url: SecretStr = SecretStr("postgresql+asyncpg://coderm:coderm@127.0.0.1:5432/coderm")
    pool_size: int = 5


class BrokerSettings(BaseModel):
    """RabbitMQ connection, consumer flow control and the back-off of failed handlers.

    A message whose handler failed waits in a delay queue (holding no consumer) before
    its next attempt: ``retry_delay_s`` after the first failure, doubled after each
    further one, never more than ``retry_max_delay_s`` (2, 4, 8, 16 s by default).
    """

    url: SecretStr = SecretStr("amqp://coderm:coderm@127.0.0.1:5672/coderm")
    prefetch: int = 4
    queue_prefix: str = "coderm"
    retry_delay_s: float = Field(default=2.0, gt=0)
    retry_max_delay_s: float = Field(default=30.0, gt=0)


class SandboxSettings(BaseModel):
    """The sandbox backend, its image and the limits every sandbox gets.

    A container is killed (and the batch retried) after ``container_timeout_margin_s``
    beyond the batch's worst case (every pair running into its limit), and never
    before ``container_timeout_s``.

    ``backend`` (``CODERM_SANDBOX__BACKEND``): ``docker`` (the default: a container a
    batch through the engine of ``docker_url``) or ``bwrap`` (the same runner under
    bubblewrap in the executor's own host or pod, in cgroups with the same memory,
    pids and CPU limits; no Docker daemon: sandbox/README.md). ``rootfs_dir``: the
    bwrap backend's root, a directory holding ``rootfs/`` (the sandbox image's file
    system) and ``env`` (the image's environment), as deploy/local/up.sh prepares it.
    """

    backend: Literal["docker", "bwrap"] = "docker"
    image: str = "coderm-sandbox:latest"
    rootfs_dir: str = "/var/lib/coderm/sandbox-rootfs/current"
    docker_url: str | None = None
    memory_mb: int = Field(default_factory=lambda: 512 * (host_cores() + 1))
    """Per container: 512 MiB for each pair it runs at once (its CPUs + 1)."""
    pids_limit: int = 128
    cpus: float = Field(default_factory=lambda: float(host_cores()))
    """Per container: every host core by default. Limits are effective time (waiting
    for a CPU is not counted), so containers sharing the cores change no verdict, and
    a batch that runs alone at the end of a run can use all of them."""
    tmpfs_mb: int = 64
    user: str = "65534:65534"
    container_timeout_s: float = 60.0
    container_timeout_margin_s: float = 30.0


class LoggingSettings(BaseModel):
    """structlog output: ``auto`` is pretty on a terminal and JSON elsewhere."""

    level: str = "INFO"
    format: str = Field(default="auto", pattern="^(auto|json|console)$")


MetricsPort = Annotated[int, Field(ge=0, le=65535)]
"""The port of a service's ``/metrics``, ``/healthz`` and ``/readyz`` (0: none)."""


class ServiceSettings(BaseSettings):
    """What every service reads; each service may extend it with its own fields.

    ``metrics_port`` (``CODERM_METRICS_PORT``) is where the service serves
    ``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics_host``; each service has its
    own default (generator 9711, extractor 9712, scorer 9713, executor 9720), and 0
    turns the endpoint off. Replicas on one host need a port each: deploy/local/up.sh
    gives ``executor-K`` 9719 + K (docs/OBSERVABILITY.md).
    """

    model_config = SettingsConfigDict(
        env_prefix="CODERM_", env_nested_delimiter="__", extra="ignore"
    )

    database: DatabaseSettings = DatabaseSettings()
    broker: BrokerSettings = BrokerSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics_port: MetricsPort = 0
    metrics_host: str = "0.0.0.0"


class OpenAISettings(BaseModel):
    """OpenAI-compatible endpoints: keys, flow control, timeouts and retries.

    ``api_key`` is sent as a bearer token unless a model names another key with its
    ``api_key_ref`` (``CODERM_OPENAI__API_KEYS='{"ref": "key"}'``); keys live only here.
    Transient failures (429, 5xx, connection errors, timeouts) are retried with
    exponential back-off and jitter until ``retry_deadline_s``; then the message is
    retried by the broker.
    """

    api_key: SecretStr | None = None
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    max_concurrency: int = Field(default=8, ge=1)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 900.0
    retry_deadline_s: float = 900.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class GeneratorSettings(ServiceSettings):
    """The generator service. ``local_engines`` bounds how many in-process (vLLM)
    engines one generator keeps loaded; the least recently used one is closed first.
    ``requests_in_flight`` generate requests are handled at once (the broker's
    prefetch), so an engine batches the samples of many problems."""

    openai: OpenAISettings = OpenAISettings()
    local_engines: int = Field(default=2, ge=1)
    requests_in_flight: int = Field(default=16, ge=1)
    metrics_port: MetricsPort = 9711


def host_cores() -> int:
    """The CPUs this process may run on (its affinity set; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def reference_data_dir() -> Path:
    """The public reference data (benchmarks, published generations) that benchmarks and
    tests read: ``CODERM_DATA_DIR`` if set, else ``shared/data`` beside the checkout."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("CODERM_DATA_DIR", default))


def default_instance() -> str:
    """A name for this process among its replicas: ``<host>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ExtractorSettings(ServiceSettings):
    """The extractor service: how a problem's (solution x test) matrix is cut into batches.

    A batch holds as many solutions as keep it near ``pairs_per_batch`` pairs (each
    solution counts its tests plus its ground-truth label), at least one and at most
    ``solutions_per_batch``. Bigger batches pay fewer container starts; a run still has
    hundreds of batches to spread over the executors' sandboxes.
    """

    solutions_per_batch: int = Field(default=100, ge=1)
    pairs_per_batch: int = Field(default=1000, ge=1)
    metrics_port: MetricsPort = 9712


class ExecutorSettings(ServiceSettings):
    """The executor service.

    ``concurrency`` sandboxes run at once (default: the host's cores, one container
    CPU each); the broker delivers ``concurrency + prefetch_extra`` batches, so the next
    batch's code is loaded and the last one's results written while sandboxes run.
    ``test_cache_mb`` bounds the per-process cache of unit-test code. ``instance``
    names this replica in its log lines (deploy/local/up.sh sets ``CODERM_INSTANCE``).
    """

    sandbox: SandboxSettings = SandboxSettings()
    concurrency: int = Field(default_factory=host_cores, ge=1)
    prefetch_extra: int = Field(default=1, ge=0)
    test_cache_mb: int = Field(default=64, ge=0)
    instance: str = Field(default_factory=default_instance)
    metrics_port: MetricsPort = 9720
    reward_slots: int = Field(default=1, ge=1)
    """Sandboxes kept for reward requests (``ExecutePairs``) beside ``concurrency``, so
    a trainer's request never waits behind batch runs."""
    warm_sandboxes: int = Field(default=2, ge=0)
    """Started containers kept waiting for reward requests (Docker backend; 0: none),
    each used for one request and replaced (sandbox/client/warm.py)."""
    warm_max_idle_s: float = Field(default=300.0, gt=0)
    """A waiting container idle this long is replaced by a fresh one."""


class ScorerSettings(ServiceSettings):
    """The scorer service."""

    metrics_port: MetricsPort = 9713


class GatewaySettings(ServiceSettings):
    """The reward gateway (``services/gateway``): where it listens, what it takes and
    how long it waits.

    ``max_body_bytes``, ``max_items`` (responses a request) and ``max_response_chars``
    bound a request (413 / 422 beyond). When more than ``queue_bound`` reward requests
    wait for an executor, new ones get 429 with ``Retry-After: retry_after_s``.
    ``request_timeout_s`` bounds the wait for the executor (504 beyond; the verdicts
    stored meanwhile are kept, so a retry runs only what is missing).

    Banks on first use (services/gateway/banks.py): with ``bank_test_model`` set, a
    problem without a test bank gets one from a run of ``bank_tests`` test samples of
    that model (and one solution sample of ``bank_policy``, by default the same model);
    a request waits up to ``bank_wait_s`` for it (503 with ``Retry-After`` beyond), and
    a bank run that is still running ``bank_stall_s`` after it started is driven again.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    max_body_bytes: int = Field(default=8 << 20, ge=1024)
    max_items: int = Field(default=1024, ge=1)
    max_response_chars: int = Field(default=65536, ge=1)
    queue_bound: int = Field(default=64, ge=1)
    retry_after_s: int = Field(default=2, ge=1)
    request_timeout_s: float = Field(default=180.0, gt=0)
    metrics_port: MetricsPort = 9714
    bank_test_model: str | None = None
    bank_policy: str | None = None
    bank_tests: int = Field(default=20, ge=1, le=1000)
    bank_wait_s: float = Field(default=120.0, gt=0)
    bank_stall_s: float = Field(default=600.0, gt=0)
