"""structlog set-up: key-value events, JSON off a terminal, pretty on one."""

from __future__ import annotations

import logging
import sys

import structlog

from shared.settings import LoggingSettings


def configure_logging(settings: LoggingSettings, service: str) -> structlog.stdlib.BoundLogger:
    """Configure structlog and stdlib logging once at start-up; return the service logger."""
    use_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelName(settings.level.upper())
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    for noisy in ("aiormq", "aio_pika", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(service=service)
    return logger
