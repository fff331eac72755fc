"""The work behind each CLI command, as async functions the CLI, the demo and the tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mash_broker.agencies.education.directory import (
    DirectoryChanges,
    School,
    SharedEmail,
    parse_directory,
    plan_directory,
    schools_from,
    shared_emails,
)
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import IngestReport, Progress, RowReceipt, read_export, sign_rows
from mash_broker.agencies.police.versions import versions_of
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.message_file import RowSender, gate_seal_key, send_file
from mash_broker.app.runtime import producer
from mash_broker.contracts import Envelope, InputFileError
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.logging import get_logger
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger
from mash_broker.storage.directory import DirectoryUpdate

log = get_logger("mash_broker.directory")


@dataclass(frozen=True)
class LoadReport:
    """What `mash school load` did (or, refused or in a dry run, would do): the changes, the rows
    refused, the warnings. ``applied`` says whether the ledger was written."""

    source: str
    schools: int  # schools in the file that were (or would be) loaded
    key_adults: int
    problems: list[dict[str, object]]
    changes: DirectoryChanges
    warnings: list[SharedEmail]
    applied: bool
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


async def load_schools(
    ledger: Ledger,
    path: Path,
    now: datetime,
    *,
    remove_missing: bool = False,
    partial: bool = False,
    dry_run: bool = False,
) -> LoadReport:
    """Validate a school directory and apply it all or nothing: any invalid row and nothing changes
    (unless ``partial``: then the valid rows are loaded). Schools and Key Adults the file leaves out
    are kept unless ``remove_missing`` (and never when a row was refused: it may be the missing one).
    A dry run plans and writes nothing. The audited log gets one ``directory.loaded`` with counts."""
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InputFileError(f"cannot read the file ({exc.strerror})", record=str(path)) from exc
    result = parse_directory(data, source=str(path))
    problems: list[dict[str, object]] = [
        {"line": p.line, "field": p.field, "reason": p.reason} for p in result.problems
    ]
    if problems and not partial:
        log.info("directory.refused", source=path.name, rows_refused=len(problems))
        return LoadReport(str(path), 0, 0, problems, DirectoryChanges(), [], applied=False, dry_run=dry_run)
    remove = remove_missing and not problems
    async with ledger.reader() if dry_run else ledger.transaction() as tx:
        if not dry_run:
            await tx.lock_event_log()  # one load at a time: the plan is made from what this load replaces
        changes = plan_directory(schools_from(await tx.directory_entries()), result.schools, remove_missing=remove)
        warnings = shared_emails(changes.after)
        counts = {**changes.counts(), "rows_refused": len(problems), "shared_emails": len(warnings)}
        if not dry_run:
            await tx.apply_directory(_update(changes, result.schools), now)
            await tx.event("directory.loaded", None, now, source=path.name, remove_missing=remove, **counts)
    log.info("directory.planned" if dry_run else "directory.loaded", source=path.name, **counts)
    return LoadReport(
        source=str(path),
        schools=len(result.schools),
        key_adults=sum(len(s.key_adults) for s in result.schools.values()),
        problems=problems,
        changes=changes,
        warnings=warnings,
        applied=not dry_run,
        dry_run=dry_run,
    )


def _update(changes: DirectoryChanges, loaded: Mapping[str, School]) -> DirectoryUpdate:
    """The rows to write: every school in the file (stamped as loaded now), its Key Adults, the removals."""
    return DirectoryUpdate(
        schools=[(s.urn, s.name, s.la_code) for s in loaded.values()],
        key_adults=[(s.urn, a.email, a.name) for s in loaded.values() for a in s.key_adults],
        removed_key_adults=[(a.urn, a.email) for a in changes.key_adults_removed],
        removed_schools=[s.urn for s in changes.schools_removed],
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
    rows, withdrawn = await versions_of(rows, ledger)  # a changed row is a correction; a resend, the same message
    return await _sign_and_publish(
        settings,
        ledger,
        bootstrap,
        path,
        rows,
        rejected + withdrawn,
        progress=progress,
        timeout_s=timeout_s,
        topic_for=lambda _: POLICE_NOTIFICATIONS,
    )


async def withdraw(
    settings: Settings, ledger: Ledger, bootstrap: str, withdrawal: Envelope, *, timeout_s: float | None = None
) -> IngestReport:
    """`mash police withdraw`: sign a withdrawal with its force's key, publish it, wait for the gate's receipt."""
    return await _sign_and_publish(
        settings,
        ledger,
        bootstrap,
        Path("(withdrawal)"),
        [ParsedRow(1, withdrawal)],
        [],
        progress=None,
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
    seal_to = gate_seal_key(settings, datetime.now(UTC)) if rows else None  # MASH_ENCRYPT_TO_GATE
    rows = sign_rows(rows, KeyStore(settings.keys_dir), seal_to=seal_to)  # KeyMissing (exit 2) before any send
    receipts = list(rejected)
    if rows:
        async with producer(settings, bootstrap) as prod:
            receipts += await RowSender(prod, settings, ledger, topic_for, progress, timeout_s)(rows)
    receipts.sort(key=lambda r: (r.line, r.field or ""))
    return IngestReport(source=str(path), receipts=receipts)


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
    return await send_file(
        settings,
        ledger,
        bootstrap,
        path,
        progress=progress,
        timeout_s=timeout_s,
        topic_for=lambda env: REGISTRY.inbound_topic(env.sender_org, env.kind),
    )
