"""Every stored copy of a message, and the hash of it the audited log recorded. Pure.

The entry that stores or queues a copy records a hash of it, so the copy is as tamper-evident as the log:

- ``message.received``: ``content_hash`` (the envelope less ``produced_at``, ``signature`` and ``replay``) and,
  since stored copies are audited, ``envelope_sha256`` (the exact text) of ``messages.envelope``; the
  ``messages.content_hash`` column must equal the recorded ``content_hash``;
- ``delivery.queued``: ``envelope_sha256`` of ``deliveries.envelope``, which is also the ``outbox.value`` of
  record ``outbox_id``;
- ``share.referred``, ``message.replayed``, ``message.quarantined``: ``outbox_id`` and ``outbox_sha256`` of the
  outbox value they queued; ``message.quarantined`` also ``raw_sha256`` of its ``quarantine.raw``;
- ``policy.loaded``: ``sha256`` of ``policies.text`` (and of the ``policies.sha256`` column).

``consents.payload`` is checked against the payload of its message's stored envelope (itself checked above).
A row the log records no hash for (written before these hashes were recorded, or a receipt in the outbox,
which no entry queues) is counted as a warning, not a failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from mash_broker.contracts import Envelope
from mash_broker.core.audit.log import Entry
from mash_broker.core.messages import content_hash
from mash_broker.core.records import DeliveryRecord, EventRecord

COPY_ALTERED = "stored_copy_altered"


def stored_sha256(text: str) -> str:
    """SHA-256 (hex) of a stored text as the ledger keeps it (a NUL is kept as U+FFFD on every backend)."""
    return hashlib.sha256(text.replace("\x00", "\ufffd").encode("utf-8", errors="surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Wanted:
    """A stored copy an entry recorded a hash of: where it is, how to check it, and the entry that says so."""

    table: str
    key: str  # the row's id: message id, delivery id, outbox id, policy version
    column: str
    check: str  # sha256 (of the exact text) | content_hash (of the parsed envelope) | equals
    expected: str
    recorded_by: Entry

    @property
    def entry(self) -> str:
        """The recording entry, as problems name it (spelt only when a problem needs it)."""
        return self.recorded_by.describe()

    def place(self) -> str:
        return f"{self.table}.{self.column} of {ROW_NAMES[self.table]} {self.key}"


ROW_NAMES = {
    "messages": "message",
    "deliveries": "delivery",
    "outbox": "outbox record",
    "policies": "policy version",
    "quarantine": "quarantine item",
    "consents": "consent row",
}


@dataclass(frozen=True, slots=True)
class QuarantinedCopy:
    """A quarantine row's raw text and what pairs it with its ``message.quarantined`` entry."""

    item_id: int
    message_id: str | None
    topic: str
    reason_code: str
    raw: str


@dataclass(frozen=True, slots=True)
class ConsentCopy:
    """A consent row's payload and its message's stored envelope (None if the message row is gone)."""

    row_id: int
    message_id: str
    payload: str
    envelope: str | None


class StoredCopies(Protocol):
    """The ledger's stored copies, read a batch at a time (``mash_broker.storage.audit``)."""

    async def stored_texts(self, table: str, column: str, keys: Collection[str]) -> dict[str, str]:
        """``column`` of the rows of ``table`` with these ids, by id (a missing row is left out)."""
        ...

    async def count(self, table: str) -> int: ...

    def quarantined_copies(self, *, page: int) -> AsyncIterator[list[QuarantinedCopy]]:
        """Quarantine rows in the order they were written, a page at a time."""
        ...

    def consent_copies(self, *, page: int) -> AsyncIterator[list[ConsentCopy]]:
        """Consent rows with their message's envelope, a page at a time."""
        ...


# The entries that can record a stored copy's hash: these types, and any whose detail names an outbox_sha256.
RECORDING = frozenset({"message.received", "delivery.queued", "policy.loaded", "message.quarantined"})
OUTBOX_SHA256 = '"outbox_sha256"'


def records_copies(event_type: str, detail_text: str) -> bool:
    """Whether an entry may record a stored copy's hash, judged from its stored detail text (no parsing)."""
    return event_type in RECORDING or OUTBOX_SHA256 in detail_text


def wanted_by(entry: Entry) -> list[Wanted]:
    """The stored copies this entry recorded a hash of (none for most entries)."""
    d: Any = entry.detail
    if not isinstance(d, dict):
        return []
    at, kind = entry, entry.event_type
    out: list[Wanted] = []
    if kind == "message.received" and entry.message_id:
        mid, digest = entry.message_id, d.get("content_hash")
        if isinstance(d.get("envelope_sha256"), str):
            out.append(Wanted("messages", mid, "envelope", "sha256", d["envelope_sha256"], at))
        elif isinstance(digest, str):
            out.append(Wanted("messages", mid, "envelope", "content_hash", digest, at))
        if isinstance(digest, str):
            out.append(Wanted("messages", mid, "content_hash", "equals", digest, at))
    elif kind == "delivery.queued" and isinstance(d.get("envelope_sha256"), str):
        if isinstance(d.get("delivery_id"), str):
            out.append(Wanted("deliveries", d["delivery_id"], "envelope", "sha256", d["envelope_sha256"], at))
        if isinstance(d.get("outbox_id"), str):
            out.append(Wanted("outbox", d["outbox_id"], "value", "sha256", d["envelope_sha256"], at))
    elif kind == "policy.loaded" and isinstance(d.get("sha256"), str) and isinstance(d.get("version"), str):
        out.append(Wanted("policies", d["version"], "text", "sha256", d["sha256"], at))
        out.append(Wanted("policies", d["version"], "sha256", "equals", d["sha256"], at))
    if isinstance(d.get("outbox_sha256"), str) and isinstance(d.get("outbox_id"), str):
        out.append(Wanted("outbox", d["outbox_id"], "value", "sha256", d["outbox_sha256"], at))
    return out


def mismatch(wanted: Wanted, stored: str) -> str | None:
    """Why ``stored`` is not the copy ``wanted`` recorded, or None if it is."""
    if wanted.check == "sha256":
        same = stored_sha256(stored) == wanted.expected
    elif wanted.check == "content_hash":
        try:
            same = content_hash(Envelope.model_validate_json(stored)) == wanted.expected
        except ValidationError:
            return f"is no longer a valid envelope, so it cannot match the content hash {wanted.entry} recorded"
    else:
        same = stored == wanted.expected
    if same:
        return None
    what = "content hash" if wanted.check != "sha256" else "SHA-256"
    return f"was changed after it was stored: it does not match the {what} {wanted.entry} recorded"


def consent_mismatch(copy: ConsentCopy) -> str | None:
    """Why a consent row's payload is not its (stored) message's payload, or None if it is or cannot be told."""
    if copy.envelope is None:
        return None  # the message row is gone: reported against messages
    try:
        payload = Envelope.model_validate_json(copy.envelope).payload
    except ValidationError:
        return None  # the envelope itself is reported against messages
    if payload.model_dump_json() == copy.payload:
        return None
    return f"was changed after it was stored: it is not the payload of message {copy.message_id} as received"


def replay_refusals(
    message_id: str, envelope: str, deliveries: Sequence[DeliveryRecord], events: Sequence[EventRecord]
) -> dict[str, str]:
    """The deliveries a replay must not re-send because a stored copy fails its recorded hash (or the log
    never recorded it), by delivery id, each with the reason: table, id and field."""
    received = [e for e in events if e.event_type == "message.received"]
    problem: str | None = None
    if not received:
        problem = f"messages.envelope of message {message_id}: no message.received entry in the audited log"
    for e in received:
        for wanted in wanted_by(_entry(e)):
            if wanted.column == "envelope" and (why := mismatch(wanted, envelope)):
                problem = f"{wanted.place()} {why}"
    queued = {e.detail.get("delivery_id"): e for e in events if e.event_type == "delivery.queued"}
    refused: dict[str, str] = {}
    for d in deliveries:
        if problem:
            refused[d.delivery_id] = problem
        elif (q := queued.get(d.delivery_id)) is None:
            refused[d.delivery_id] = f"deliveries.envelope of delivery {d.delivery_id}: no delivery.queued entry"
        else:
            for wanted in wanted_by(_entry(q)):
                if wanted.table == "deliveries" and (why := mismatch(wanted, d.envelope)):
                    refused[d.delivery_id] = f"{wanted.place()} {why}"
    return refused


def _entry(e: EventRecord) -> Entry:
    return Entry(e.seq, e.at, e.event_type, e.message_id, e.detail, e.leaf_hash)
