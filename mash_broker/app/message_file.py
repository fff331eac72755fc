"""`mash send`'s input: envelopes from a file, read one record at a time in bounded memory.

The formats are those `mash send` has always taken: one JSON object (pretty-printed or not), a JSON
array of them, or JSON Lines. Each record is checked on its own (``core.intake``: size, nesting, JSON
with each key once, the envelope's contract) and answered with its number (its line, for JSON Lines),
the field and the reason; never its values. Memory is bounded by one record (at most
``MAX_MESSAGE_BYTES``) plus one batch of envelopes, however large the file.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import IngestReport, Progress, RowReceipt, publish_rows, sign_row
from mash_broker.app.runtime import producer
from mash_broker.contracts import Envelope, InputFileError
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.crypto.envelopes import RecipientKey
from mash_broker.core.intake import MAX_DEPTH, TOO_DEEP, WHOLE_RECORD, Unreadable, nesting_depth
from mash_broker.core.intake import read_envelope as check_record
from mash_broker.core.messages import GATE_ORG, MAX_MESSAGE_BYTES, encode
from mash_broker.core.ports import GateReceipts
from mash_broker.core.sealing import keys_in_force, require_key
from mash_broker.core.settings import Settings
from mash_broker.core.signing import RegistryFile, require_signer

CHUNK = 1 << 16
BATCH_RECORDS, BATCH_BYTES = 1000, 16_000_000  # sent, then their receipts awaited, a batch at a time
_ARRAY_TOKENS = re.compile(rb'["\\\[\]{},]')
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record's bytes (empty if it was over the limit) and where it is in the file."""

    number: int
    raw: bytes
    size: int


def read_records(path: Path, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[ParsedRow | RowReceipt]:
    """Each record of the file: an envelope to send, or its rejected receipt(s), in file order.

    Raises InputFileError, before any record, if the file cannot be read or is not JSON at all."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InputFileError(f"cannot read the file ({exc.strerror})", record=str(path)) from exc
    with f:
        for record in _raw_records(f, path, max_bytes):
            yield from _checked(record, max_bytes)


def _checked(record: RawRecord, max_bytes: int) -> Iterator[ParsedRow | RowReceipt]:
    n = record.number
    if record.size > max_bytes:
        yield _rejected(n, WHOLE_RECORD, f"record {n} is {record.size} bytes, over the limit of {max_bytes}")
        return
    read = check_record(record.raw, max_bytes=max_bytes)
    if isinstance(read, Envelope):
        yield ParsedRow(line=n, envelope=read)
        return
    for field, why in read.problems:
        yield _rejected(n, _field(field), _reason(read, why))


def _field(field: str) -> str:
    return WHOLE_RECORD if field == "(message)" else field


def _reason(read: Unreadable, why: str) -> str:
    if read.reason == TOO_DEEP:
        return f"too deep: {why}"
    if why.startswith("Invalid JSON"):
        return "not JSON"
    if why.startswith("Invalid UTF-8"):
        return "not UTF-8"
    return why


def _rejected(n: int, field: str, reason: str) -> RowReceipt:
    # Interned: 100,000 records missing the same fields hold one copy of each field name and reason.
    return RowReceipt(line=n, status="rejected", field=sys.intern(field[:200]), reason=sys.intern(reason[:200]))


Emit = Callable[[list[RowReceipt]], None]


async def send_file(
    settings: Settings,
    ledger: GateReceipts,
    bootstrap: str,
    path: Path,
    *,
    topic_for: Callable[[Envelope], str],
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> IngestReport:
    """``send_records``, its receipts collected into one report."""
    receipts: list[RowReceipt] = []
    await send_records(
        settings,
        ledger,
        bootstrap,
        path,
        topic_for=topic_for,
        emit=receipts.extend,
        progress=progress,
        timeout_s=timeout_s,
    )
    return IngestReport(source=str(path), receipts=receipts)


@dataclass(frozen=True)
class RowSender:
    """Publishes signed rows on one producer and waits for the gate's receipts (``police ingest``, ``mash send``)."""

    prod: Any  # a started AIOKafkaProducer (``runtime.producer``)
    settings: Settings
    ledger: GateReceipts
    topic_for: Callable[[Envelope], str]
    progress: Progress | None = None
    timeout_s: float | None = None  # None: the settings' receipt timeout

    async def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await self.prod.send(topic, value=value, key=key, headers=headers)

    async def __call__(self, rows: list[ParsedRow]) -> list[RowReceipt]:
        return await publish_rows(
            rows,
            ledger=self.ledger,
            send=self.send,
            timeout_s=self.settings.receipt_timeout_s if self.timeout_s is None else self.timeout_s,
            attempts=self.settings.send_attempts,
            progress=self.progress,
            before_wait=self.prod.flush,
            topic_for=self.topic_for,
        )


async def send_records(
    settings: Settings,
    ledger: GateReceipts,
    bootstrap: str,
    path: Path,
    *,
    topic_for: Callable[[Envelope], str],
    emit: Emit,
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> Counter[str]:
    """Check each record, sign it with its sender's key, publish it and wait for the gate's receipt, a batch
    at a time; each batch's receipts go to ``emit`` in file order as soon as they are known, so nothing
    grows with the file. A first pass finds every sender's key: a missing one (KeyMissing) stops it
    before anything is sent. Returns how many receipts had each status."""
    store = KeyStore(settings.keys_dir)
    senders = {item.envelope.sender_org for item in read_records(path) if isinstance(item, ParsedRow)}
    keys = {org: require_signer(store, org) for org in sorted(senders)}
    seal_to = gate_seal_key(settings, datetime.now(UTC)) if keys else None
    counts: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        prod: Any = await stack.enter_async_context(producer(settings, bootstrap)) if keys else None
        publish = RowSender(prod, settings, ledger, topic_for, progress, timeout_s)
        for rows, receipts in _batches(read_records(path)):
            if rows:
                receipts += await publish([sign_row(r, keys[r.envelope.sender_org], seal_to) for r in rows])
            receipts.sort(key=lambda r: (r.line, r.field or ""))
            counts.update(r.status for r in receipts)
            emit(receipts)
    return counts


def gate_seal_key(settings: Settings, now: datetime) -> RecipientKey | None:
    """With ``MASH_ENCRYPT_TO_GATE`` on, the gate's encryption key in force at ``now`` in the key registry
    (KeyMissing, before anything is sent, if it has none); off: None (rows go out signed, not sealed)."""
    if not settings.encrypt_to_gate:
        return None
    return require_key(keys_in_force(RegistryFile(settings.key_registry_file).load(), now), GATE_ORG)


def _batches(items: Iterator[ParsedRow | RowReceipt]) -> Iterator[tuple[list[ParsedRow], list[RowReceipt]]]:
    rows: list[ParsedRow] = []
    rejected: list[RowReceipt] = []
    held = 0
    for item in items:
        if isinstance(item, ParsedRow):
            rows.append(item)
            held += len(encode(item.envelope))
        else:
            rejected.append(item)
        if len(rows) + len(rejected) >= BATCH_RECORDS or held >= BATCH_BYTES:
            yield rows, rejected
            rows, rejected, held = [], [], 0
    yield rows, rejected


# -- splitting the file into records ------------------------------------------------------------------


def _raw_records(f: BinaryIO, path: Path, max_bytes: int) -> Iterator[RawRecord]:
    head = f.read(CHUNK)
    first = head.lstrip(_WHITESPACE)[:1]
    f.seek(0)
    if first == b"[":
        yield from _array_elements(f, max_bytes)
    elif first == b"{":
        whole = f.read(max_bytes + 1)
        if len(whole) <= max_bytes and _one_value(whole):
            yield RawRecord(1, whole, len(whole))
        else:
            f.seek(0)
            yield from _lines(f, max_bytes)
    else:
        raise InputFileError("not JSON: expected an envelope, an array of envelopes, or JSON Lines", record=str(path))


def _one_value(data: bytes) -> bool:
    """The whole file is one JSON value (one envelope, perhaps over many lines), not JSON Lines."""
    if nesting_depth(data) > MAX_DEPTH:
        return data.count(b"\n", 0, len(data.rstrip())) == 0  # one line, too deep: one record
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def _lines(f: BinaryIO, max_bytes: int) -> Iterator[RawRecord]:
    """JSON Lines: record N is line N; blank lines are skipped; a line over the limit is not held."""
    n = 0
    while line := f.readline(max_bytes + 2):
        n += 1
        size, ended = len(line), line.endswith(b"\n")
        while not ended and (more := f.readline(CHUNK)):
            size, ended = size + len(more), more.endswith(b"\n")
            line = b"" if size > max_bytes + 1 else line + more
        size -= 1 if ended else 0
        body = line.rstrip(b"\r\n")
        if size > max_bytes:
            yield RawRecord(n, b"", size)
        elif body.strip(_WHITESPACE):
            yield RawRecord(n, body, len(body))


def _array_elements(f: BinaryIO, max_bytes: int) -> Iterator[RawRecord]:
    """A JSON array's elements, found by a scan that tracks strings and nesting (no parse)."""
    depth, in_string, escaped = 0, False, False
    n, size, element = 0, 0, bytearray()
    while chunk := f.read(CHUNK):
        pos, start = 0, 0  # start: where the current element's bytes in this chunk begin
        if escaped:
            pos, escaped = 1, False
        while (m := _ARRAY_TOKENS.search(chunk, pos)) is not None:
            token, pos = m.group(), m.end()
            if in_string:
                if token == b"\\":
                    if pos >= len(chunk):
                        escaped = True
                    pos += 1
                elif token == b'"':
                    in_string = False
                continue
            if token == b'"':
                in_string = True
            elif token in b"[{":
                depth += 1
                if depth == 1:
                    start = pos  # the array opens: its first element starts after the bracket
            elif depth == 1 and token in b",]":
                size, element = _grow(size, element, chunk[start : pos - 1], max_bytes)
                if token == b"," or n or element.strip(_WHITESPACE):
                    n += 1
                    yield RawRecord(n, bytes(element).strip(_WHITESPACE), size)
                size, element, start = 0, bytearray(), pos
                if token == b"]":
                    return
                continue
            elif token in b"]}":
                depth -= 1
        size, element = _grow(size, element, chunk[start:], max_bytes)
    if depth >= 1 and (size or element.strip(_WHITESPACE)):
        yield RawRecord(n + 1, bytes(element).strip(_WHITESPACE), size)  # the file ends inside a record


def _grow(size: int, element: bytearray, more: bytes, max_bytes: int) -> tuple[int, bytearray]:
    size += len(more)
    if size > max_bytes:
        return size, bytearray()
    element += more
    return size, element
