"""structlog, configured once. Bind ids, agency and topic; never names, dates of birth, postcodes or payloads."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
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


class RepeatLimiter(logging.Filter):
    """Lets the first record of each kind through (kind: logger, level and message template), then at
    most one per ``every_s`` seconds, saying how many like it were held back. A client library that
    cannot reach its broker logs the same few lines many times a second; this keeps them readable."""

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic, kinds: int = 1000) -> None:
        super().__init__()
        self.every_s, self.clock, self.kinds = every_s, clock, kinds
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind -> (last shown, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        shown = self._seen.get(kind)
        if shown is not None and now - shown[0] < self.every_s:
            self._seen[kind] = (shown[0], shown[1] + 1)
            return False
        if shown is not None and shown[1]:
            record.msg = f"{record.msg} (and {shown[1]} more like it in the last {now - shown[0]:.0f} s)"
        if len(self._seen) >= self.kinds and kind not in self._seen:
            self._seen.clear()  # many kinds at once: forget the counts, show each again (bounded memory)
        self._seen[kind] = (now, 0)
        return True


def configure_logging(level: str = "INFO", json: bool | None = None, stream: Any = None) -> None:
    """JSON lines on stderr when not on a terminal, a console renderer when on one."""
    global _configured
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream) if stream is not None else _StderrLogger,
        cache_logger_on_first_use=False,
    )
    # Library loggers (aiokafka, faststream, uvicorn) go through stdlib logging at WARNING and above, rendered
    # by the same processors: in JSON mode every line on stderr is one JSON object, whoever wrote it.
    # Configuring again replaces our own handler only, never one a host (e.g. pytest) put there.
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_mash", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.processors.format_exc_info],
        )
    )
    handler.addFilter(RepeatLimiter())
    handler._mash = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
