"""The work behind each CLI command, as async functions the CLI, the demo and the tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from adapters.education.directory import parse_directory
from adapters.police.ingest import IngestReport, Progress, publish_rows, read_export, sign_rows
from broker.audit.keys import KeyStore
from broker.ledger import Ledger
from broker.runtime import producer
from broker.settings import Settings
from contracts import InputFileError


@dataclass
class LoadReport:
    """What `mash school load` did: schools loaded and rows refused."""

    source: str
    schools: int
    key_adults: int
    problems: list[dict[str, object]]

    @property
    def ok(self) -> bool:
        return not self.problems


async def load_schools(ledger: Ledger, path: Path, now: datetime) -> LoadReport:
    """Validate a school directory and load its valid schools; invalid rows are reported, not loaded."""
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InputFileError(f"cannot read the file ({exc.strerror})", record=str(path)) from exc
    result = parse_directory(data, source=str(path))
    rows = [(s.urn, s.name, s.la_code, [(a.name, a.email) for a in s.key_adults])
            for s in result.schools.values()]
    async with ledger.transaction() as tx:
        n = await tx.replace_directory(rows, now)
        await tx.event("directory.loaded", None, now, source=path.name, schools=n,
                       rows_refused=len(result.problems))
    return LoadReport(source=str(path), schools=n, key_adults=sum(len(r[3]) for r in rows),
                      problems=[{"line": p.line, "field": p.field, "reason": p.reason}
                                for p in result.problems])


async def ingest(settings: Settings, ledger: Ledger, bootstrap: str, path: Path, *,
                 now: Callable[[], datetime], progress: Progress | None = None,
                 timeout_s: float | None = None) -> IngestReport:
    """`mash police ingest`: parse, publish the valid rows, wait for the gate's receipts."""
    rows, rejected = read_export(path, now=now(), tz=ZoneInfo(settings.timezone))
    rows = sign_rows(rows, KeyStore(settings.keys_dir))  # KeyMissing (exit 2) before anything is sent
    receipts = list(rejected)
    if rows:
        async with producer(settings, bootstrap) as prod:
            async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
                await prod.send(topic, value=value, key=key, headers=headers)

            receipts += await publish_rows(
                rows, ledger=ledger, send=send,
                timeout_s=settings.receipt_timeout_s if timeout_s is None else timeout_s,
                attempts=settings.send_attempts, progress=progress, before_wait=prod.flush)
    receipts.sort(key=lambda r: r.line)
    return IngestReport(source=str(path), receipts=receipts)
