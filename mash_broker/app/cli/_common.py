"""What every `mash` command shares: consoles, settings, running a coroutine, exit codes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console

from mash_broker.app.runtime import open_ledger
from mash_broker.contracts import BrokerUnavailable, Envelope, InputFileError, MashError, NotFound
from mash_broker.core.logging import configure_logging
from mash_broker.core.settings import Settings, load_settings
from mash_broker.core.signing import KeyMissing
from mash_broker.storage import Ledger

T = TypeVar("T")

EXIT_ROWS_REJECTED = 1
EXIT_UNUSABLE = 2
EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4

out = Console(highlight=False, soft_wrap=True)  # a line is a line: greppable, never hard-wrapped
err = Console(stderr=True, highlight=False, soft_wrap=True)


def settings() -> Settings:
    """MASH_* settings; an invalid one is named with its reason and exits 2."""
    try:
        loaded = load_settings()
    except ValidationError as exc:
        for e in exc.errors():
            name = "MASH_" + "_".join(str(p) for p in e["loc"]).upper()
            err.print(f"setting {name}: {e['msg']}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    configure_logging(loaded.log_level, loaded.log_json)
    return loaded


def run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command; our errors become one clear line and an exit code, never a traceback."""
    try:
        return asyncio.run(coro())
    except InputFileError as exc:
        err.print(f"unusable: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    except BrokerUnavailable as exc:
        err.print(f"broker unavailable: {exc}", markup=False)
        raise typer.Exit(EXIT_UNAVAILABLE) from exc
    except NotFound as exc:
        err.print(f"not found: {exc}", markup=False)
        raise typer.Exit(EXIT_NOT_FOUND) from exc
    except KeyMissing as exc:
        err.print(f"error ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    except MashError as exc:
        err.print(f"error ({exc.code}): {exc}", markup=False)
        raise typer.Exit(1) from exc


def with_ledger(cfg: Settings, work: Callable[[Ledger], Awaitable[T]]) -> T:
    """Open the ledger, do the work, close it."""

    async def main() -> T:
        ledger = await open_ledger(cfg)
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    return run(main)


async def until_signalled() -> None:
    """Wait for Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def print_json(data: Any) -> None:
    """Data as indented JSON: records (frozen dataclasses) as objects, dates and ids as strings."""
    sys.stdout.write(json.dumps(data, indent=2, default=_as_json) + "\n")


def _as_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def safe_url(cfg: Settings) -> str:
    """The ledger URL without credentials."""
    url = cfg.ledger_url
    return url.split("@")[-1] if "@" in url else url


def moment(option: str, text: str, tz: ZoneInfo) -> datetime:
    """An ISO 8601 date or date-time from an option; without an offset it is local time in ``tz``.
    Unusable: exit 2 naming the option and what was given."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        err.print(
            f"unusable: {option}: {text!r} is not a date or time (ISO 8601, e.g. 2026-11-17, "
            "2026-11-17T07:00 or 2026-11-17T07:00Z)",
            markup=False,
        )
        raise typer.Exit(EXIT_UNUSABLE) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def read_envelope(path: Path) -> Envelope:
    """One envelope from a JSON file; unreadable or not a valid contract: exit 2 naming each field and
    reason (never the values)."""
    from mash_broker.core.gate_service import contract_problems  # the gate's wording, field paths only

    try:
        return Envelope.model_validate_json(path.read_bytes())
    except OSError as exc:
        err.print(f"unusable: {path}: {exc.strerror}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    except ValidationError as exc:
        err.print(f"unusable: {path}: {contract_problems(exc)}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
