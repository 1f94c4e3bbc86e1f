"""Settings groups shared by the services, read from ``CODERM_*`` environment variables.

Nested groups use ``__``: ``CODERM_DATABASE__URL``, ``CODERM_BROKER__URL``,
``CODERM_SANDBOX__IMAGE``. Secrets are ``SecretStr`` so they never reach a log line.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseModel):
    """PostgreSQL connection (SQLAlchemy async URL with the asyncpg driver)."""

    url: SecretStr = SecretStr("postgresql+asyncpg://coderm:coderm@127.0.0.1:5432/coderm")
    pool_size: int = 5


class BrokerSettings(BaseModel):
    """RabbitMQ connection and consumer flow control."""

    url: SecretStr = SecretStr("amqp://coderm:coderm@127.0.0.1:5672/coderm")
    prefetch: int = 4
    queue_prefix: str = "coderm"


class SandboxSettings(BaseModel):
    """Docker sandbox image and the limits every container gets.

    A container is killed (and the batch retried) after ``container_timeout_margin_s``
    beyond the batch's worst case (every pair running into its limit), and never
    before ``container_timeout_s``.
    """

    image: str = "coderm-sandbox:latest"
    docker_url: str | None = None
    memory_mb: int = 1024
    pids_limit: int = 128
    cpus: float = 1.0
    tmpfs_mb: int = 64
    user: str = "65534:65534"
    container_timeout_s: float = 60.0
    container_timeout_margin_s: float = 30.0


class LoggingSettings(BaseModel):
    """structlog output: ``auto`` is pretty on a terminal and JSON elsewhere."""

    level: str = "INFO"
    format: str = Field(default="auto", pattern="^(auto|json|console)$")


class ServiceSettings(BaseSettings):
    """What every service reads; each service may extend it with its own fields."""

    model_config = SettingsConfigDict(
        env_prefix="CODERM_", env_nested_delimiter="__", extra="ignore"
    )

    database: DatabaseSettings = DatabaseSettings()
    broker: BrokerSettings = BrokerSettings()
    logging: LoggingSettings = LoggingSettings()


class GeneratorSettings(ServiceSettings):
    """The generator service."""


class ExtractorSettings(ServiceSettings):
    """The extractor service."""

    solutions_per_batch: int = 20


class ExecutorSettings(ServiceSettings):
    """The executor service: how many sandboxes run at once."""

    sandbox: SandboxSettings = SandboxSettings()
    concurrency: int = 2


class ScorerSettings(ServiceSettings):
    """The scorer service."""
