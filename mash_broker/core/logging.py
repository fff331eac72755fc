"""structlog, configured once. Bind ids, agency and topic; never names, dates of birth, postcodes or payloads."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


class _StderrLogger:
    """Prints to whatever ``sys.stderr`` is at the moment of writing, so a stream swapped and
    closed by an embedding caller (a test runner, a CLI harness) never breaks a later log call."""

    def __init__(self, *_args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdlib twin of ``_StderrLogger``: resolves ``sys.stderr`` on each record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


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
        logger_factory=structlog.PrintLoggerFactory(file=stream) if stream is not None else _StderrLogger,
        cache_logger_on_first_use=False,
    )
    # Library loggers (aiokafka, faststream) go through stdlib logging at WARNING and above.
    # Configuring again replaces our own handler only, never one a host (e.g. pytest) put there.
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_mash", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler._mash = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
