"""structlog, configured once. Bind ids, agency and topic; never names, dates of birth, postcodes or payloads."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


def configure_logging(level: str = "INFO", json: bool | None = None, stream: Any = None) -> None:
    """JSON lines on stderr when not on a terminal, a console renderer when on one."""
    global _configured
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Library loggers (aiokafka, faststream) go through stdlib logging at WARNING and above.
    logging.basicConfig(level=logging.WARNING, stream=out, format="%(levelname)s %(name)s %(message)s")
    _configured = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
