"""The work behind each CLI command, as async functions the CLI, the demo and the tests share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from mash_broker.agencies.education.directory import parse_directory
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import IngestReport, Progress, RowReceipt, publish_rows, read_export, sign_rows
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.runtime import producer
from mash_broker.contracts import Envelope, InputFileError
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger


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
    rows = [(s.urn, s.name, s.la_code, [(a.name, a.email) for a in s.key_adults]) for s in result.schools.values()]
    async with ledger.transaction() as tx:
        n = await tx.replace_directory(rows, now)
        await tx.event("directory.loaded", None, now, source=path.name, schools=n, rows_refused=len(result.problems))
    return LoadReport(
        source=str(path),
        schools=n,
        key_adults=sum(len(r[3]) for r in rows),
        problems=[{"line": p.line, "field": p.field, "reason": p.reason} for p in result.problems],
    )


async def ingest(
    settings: Settings,
    ledger: Ledger,
    bootstrap: str,
    path: Path,
    *,
    now: Callable[[], datetime],
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> IngestReport:
    """`mash police ingest`: parse, publish the valid rows, wait for the gate's receipts."""
    rows, rejected = read_export(path, now=now(), tz=ZoneInfo(settings.timezone))
    return await _sign_and_publish(
        settings,
        ledger,
        bootstrap,
        path,
        rows,
        rejected,
        progress=progress,
        timeout_s=timeout_s,
        topic_for=lambda _: POLICE_NOTIFICATIONS,
    )


async def _sign_and_publish(
    settings: Settings,
    ledger: Ledger,
    bootstrap: str,
    path: Path,
    rows: list[ParsedRow],
    rejected: list[RowReceipt],
    *,
    progress: Progress | None,
    timeout_s: float | None,
    topic_for: Callable[[Envelope], str],
) -> IngestReport:
    """Sign each row with its sender's key, publish it, wait for the gate's receipts; a receipt per row."""
    rows = sign_rows(rows, KeyStore(settings.keys_dir))  # KeyMissing (exit 2) before anything is sent
    receipts = list(rejected)
    if rows:
        async with producer(settings, bootstrap) as prod:

            async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
                await prod.send(topic, value=value, key=key, headers=headers)

            receipts += await publish_rows(
                rows,
                ledger=ledger,
                send=send,
                timeout_s=settings.receipt_timeout_s if timeout_s is None else timeout_s,
                attempts=settings.send_attempts,
                progress=progress,
                before_wait=prod.flush,
                topic_for=topic_for,
            )
    receipts.sort(key=lambda r: (r.line, r.field or ""))
    return IngestReport(source=str(path), receipts=receipts)


MAX_MESSAGE_FILE_BYTES = 16 * 1024 * 1024


def read_messages(path: Path) -> tuple[list[ParsedRow], list[RowReceipt]]:
    """Envelopes from a file: one JSON object, a JSON array of them, or JSON Lines. Each record is
    checked on its own: a bad one becomes a rejected receipt naming its record number (the line,
    for JSON Lines) and each field with its reason, never its values; the others go on."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read the file ({exc.strerror})", record=str(path)) from exc
    if len(data) > MAX_MESSAGE_FILE_BYTES:
        raise InputFileError(f"{len(data)} bytes: larger than {MAX_MESSAGE_FILE_BYTES}", record=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError("not UTF-8", record=str(path)) from exc
    stripped = text.lstrip()
    records: list[tuple[int, object]]
    try:
        doc = json.loads(text)
        records = list(enumerate(doc, start=1)) if isinstance(doc, list) else [(1, doc)]
    except ValueError:
        if not stripped or stripped[0] != "{":
            raise InputFileError(
                "not JSON: expected an envelope, an array of envelopes, or JSON Lines", record=str(path)
            ) from None
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((n, json.loads(line)))
                except ValueError:
                    records.append((n, None))
    rows: list[ParsedRow] = []
    rejected: list[RowReceipt] = []
    for n, record in records:
        if record is None:
            rejected.append(RowReceipt(line=n, status="rejected", field="(record)", reason="not JSON"))
            continue
        try:
            rows.append(ParsedRow(line=n, envelope=Envelope.model_validate(record)))
        except ValidationError as exc:
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"]) or "(record)"
                rejected.append(RowReceipt(line=n, status="rejected", field=where[:200], reason=e["msg"][:200]))
    return rows, rejected


async def send_messages(
    settings: Settings,
    ledger: Ledger,
    bootstrap: str,
    path: Path,
    *,
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> IngestReport:
    """`mash send`: check each envelope in a file, sign it with its sender's key, publish it on its
    sender's inbound topic, and wait for the gate's receipt, as `mash police ingest` does for rows."""
    rows, rejected = read_messages(path)
    return await _sign_and_publish(
        settings,
        ledger,
        bootstrap,
        path,
        rows,
        rejected,
        progress=progress,
        timeout_s=timeout_s,
        topic_for=lambda env: REGISTRY.inbound_topic(env.sender_org, env.kind),
    )
