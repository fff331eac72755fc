"""Police adapter I/O: publish an overnight export's rows and collect the gate's receipts from the ledger.

A row counts as accepted only when the gate's receipt for it is in the ledger. Ingest waits while
receipts keep arriving, however slow the gate; once none has arrived for the receipt timeout, the rows
still without one (the ones the gate has not recorded) are sent again (same message id, so the gate
deduplicates), and reported as not accepted if they still have none after the last attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.police.export import ParsedRow, parse_export
from mash_broker.contracts import EncompassNotification, Envelope, InputFileError
from mash_broker.core.audit.keys import KeyStore, Signer
from mash_broker.core.crypto.envelopes import RecipientKey, encrypt_payload
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import MAX_MESSAGE_BYTES, content_hash, encode, headers_for
from mash_broker.core.ports import GateReceipts
from mash_broker.core.records import Receipt
from mash_broker.core.signing import require_signer, sign

log = get_logger("mash.police")

Send = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], Awaitable[None]]
Progress = Callable[[int, int], None]

# What the police system is told per row.
VERDICT_STATUS = {"share": "accepted", "refer": "referred", "withhold": "withheld", "rejected": "rejected"}
# A correction recorded (its old version's copies withdrawn) and a withdrawal recorded (core/corrections.py).
VERDICT_STATUS |= {"corrected": "corrected", "withdrawn": "withdrawn"}
# "superseded": a row repeating a version a later correction replaced; nothing is sent, and it is no error.
ANSWERED = ("accepted", "referred", "corrected", "withdrawn", "superseded")


@dataclass(slots=True)
class RowReceipt:
    """One row's outcome; no personal data, so it can be printed and logged."""

    line: int
    status: str  # accepted | referred | corrected | withdrawn | superseded | withheld | rejected | not_accepted
    message_id: str | None = None
    school_urn: str | None = None
    field: str | None = None
    reason: str | None = None
    attempts: int = 0


@dataclass
class IngestReport:
    """The receipts for a whole file."""

    source: str
    receipts: list[RowReceipt]

    @property
    def ok(self) -> bool:
        return all(r.status in ANSWERED for r in self.receipts)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.receipts:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "ok": self.ok,
            "counts": self.counts(),
            "receipts": [asdict(r) for r in self.receipts],
        }


def read_export(path: Path, *, now: datetime, tz: ZoneInfo) -> tuple[list[ParsedRow], list[RowReceipt]]:
    """Parse the file; rejected rows become receipts. Raises InputFileError if the file is unusable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read the file ({exc.strerror})", record=str(path)) from exc
    result = parse_export(data, source=str(path), now=now, tz=tz)
    rejected = [RowReceipt(line=p.line, status="rejected", field=p.field, reason=p.reason) for p in result.problems]
    return list(result.accepted), rejected


@dataclass(frozen=True)
class SealedRow(ParsedRow):
    """A row that goes out sealed to the gate: ``wire`` (the signed ``EncryptedEnvelope``'s JSON) is what is
    sent; ``envelope`` stays the plaintext, for the receipts (content hash, school) and nothing else."""

    wire: str = ""


def sign_row(row: ParsedRow, key: Signer, seal_to: RecipientKey | None = None) -> ParsedRow:
    """``row`` signed with ``key``; with ``seal_to`` (the gate's encryption key in force), its content is
    sealed to that key first and the sealed envelope signed, so the signature covers what travels."""
    if seal_to is None:
        return replace(row, envelope=sign(row.envelope, key))
    sealed = sign(encrypt_payload(row.envelope, seal_to.org, seal_to), key)
    return SealedRow(row.line, row.envelope, sealed.model_dump_json())


def sign_rows(rows: list[ParsedRow], store: KeyStore, *, seal_to: RecipientKey | None = None) -> list[ParsedRow]:
    """Each row's envelope signed with its force's key (``police:<force>``), loaded from ``store``, and
    sealed to ``seal_to`` first if given (``MASH_ENCRYPT_TO_GATE``).

    Raises KeyMissing, before anything is sent, if a force in the file has no key there.
    """
    keys = {org: require_signer(store, org) for org in sorted({r.envelope.sender_org for r in rows})}
    return [sign_row(r, keys[r.envelope.sender_org], seal_to) for r in rows]


def _wire(row: ParsedRow) -> str:
    return row.wire if isinstance(row, SealedRow) else encode(row.envelope)


async def publish_rows(
    rows: list[ParsedRow],
    *,
    ledger: GateReceipts,
    send: Send,
    timeout_s: float,
    attempts: int,
    progress: Progress | None = None,
    before_wait: Callable[[], Awaitable[None]] | None = None,
    poll_s: float = 0.1,
    topic_for: Callable[[Envelope], str] = lambda _: POLICE_NOTIFICATIONS,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[RowReceipt]:
    """Send each row (on ``topic_for`` its envelope) until the gate's receipt is in the ledger, or
    attempts run out."""
    # A record over the broker's limit is answered, not sent: it would fail the producer and the gate.
    sizes = {str(r.envelope.message_id): len(_wire(r).encode()) for r in rows}
    oversize = [r for r in rows if sizes[str(r.envelope.message_id)] > max_bytes]
    rows = [r for r in rows if sizes[str(r.envelope.message_id)] <= max_bytes]
    by_id = {str(r.envelope.message_id): r for r in rows}
    tries = dict.fromkeys(by_id, 0)
    # Answered only for this content: a message id the ledger holds with other content is not "accepted".
    hashes = {mid: content_hash(r.envelope) for mid, r in by_id.items()}
    found = await ledger.receipts_for_content(hashes)
    waiting = [mid for mid in by_id if mid not in found]
    done = len(by_id) - len(waiting)
    if progress:
        progress(done, len(by_id))
    for _attempt in range(attempts):
        if not waiting:
            break
        for mid in waiting:
            env = by_id[mid].envelope
            tries[mid] += 1
            await send(
                topic_for(env),
                str(env.correlation_id).encode(),
                _wire(by_id[mid]).encode(),
                [(k, v.encode()) for k, v in headers_for(env).items()],
            )
        if before_wait:
            await before_wait()  # e.g. flush the producer: the sends are on the wire before we wait
        waiting = await _while_progressing(ledger, hashes, waiting, found, timeout_s, poll_s, progress)
        if waiting:
            log.warning("ingest.receipts_missing", count=len(waiting), attempt=_attempt + 1)
    receipts = [
        RowReceipt(
            line=r.line,
            status="rejected",
            message_id=str(r.envelope.message_id),
            field="(record)",
            reason=f"record {r.line} is {sizes[str(r.envelope.message_id)]} bytes, over the limit of {max_bytes}",
        )
        for r in oversize
    ]
    for mid, row in by_id.items():
        payload = row.envelope.payload
        urn = payload.school_urn if isinstance(payload, EncompassNotification) else None
        if mid in found:
            rec = found[mid]
            status = VERDICT_STATUS.get(rec.verdict or "", "accepted")
            reason = ", ".join(rec.reasons or []) or None
            receipts.append(
                RowReceipt(
                    line=row.line, status=status, message_id=mid, school_urn=urn, reason=reason, attempts=tries[mid]
                )
            )
        else:
            receipts.append(
                RowReceipt(
                    line=row.line,
                    status="not_accepted",
                    message_id=mid,
                    school_urn=urn,
                    reason=f"no receipt from the gate after {tries[mid]} attempts",
                    attempts=tries[mid],
                )
            )
    return receipts


async def _while_progressing(
    ledger: GateReceipts,
    hashes: dict[str, str],
    waiting: list[str],
    found: dict[str, Receipt],
    timeout_s: float,
    poll_s: float,
    progress: Progress | None,
) -> list[str]:
    """Collect receipts into ``found`` while they keep arriving; return the rows still waiting once none
    has arrived for ``timeout_s`` (a slow gate is waited for, a stalled one is not; only the rows it has
    not recorded are left to send again). Polls no more than a third of the time: the gate shares the ledger."""
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    pause = poll_s
    while waiting and loop.time() - last_progress < timeout_s:
        await asyncio.sleep(pause)
        asked = loop.time()
        got = await ledger.receipts_for_content({m: hashes[m] for m in waiting})
        pause = max(poll_s, 2 * (loop.time() - asked))
        if got:
            last_progress = loop.time()
            found.update(got)
            waiting = [m for m in waiting if m not in got]
            if progress:
                progress(len(hashes) - len(waiting), len(hashes))
    return waiting
