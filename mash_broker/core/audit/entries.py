"""The bytes the audited log commits to: one entry per ledger event, and each signed checkpoint. Pure.

An entry's canonical bytes are RFC 8785 (JCS) JSON of exactly these members::

    {"at": "2026-11-17T07:00:00.000000Z",   # the event time, UTC, always six fractional digits
     "event_type": "message.received",
     "message_id": "…" or null,
     "detail": {…}}                          # the event's detail as stored (JSON)

The ledger's autoincrement ``seq`` is not hashed: it is the entry's position (tree index = seq - 1),
which the tree itself commits to. A checkpoint (signed tree head) signs the RFC 8785 JSON of
``{"at", "key_id", "log": "mash-broker", "root_hash", "tree_size"}`` with the gate's Ed25519 key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import rfc8785

from mash_broker.core.audit.merkle import leaf_hash

LOG_ID = "mash-broker"
ENTRY_ENCODING = "RFC 8785 JSON of {at, event_type, message_id, detail}; at is UTC with microseconds"
CHECKPOINT_ENCODING = "RFC 8785 JSON of {at, key_id, log, root_hash, tree_size}, signed with Ed25519"
HASHING = "RFC 6962: leaf SHA-256(0x00 || entry), node SHA-256(0x01 || left || right)"


def iso_utc(at: datetime) -> str:
    """An aware datetime as UTC ISO 8601 with microseconds and a Z: one spelling per instant."""
    if at.tzinfo is None:
        raise ValueError("the ledger stores aware datetimes only")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def as_stored(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail as a JSON column gives it back (string keys, lists for tuples): what gets hashed."""
    stored: dict[str, Any] = json.loads(json.dumps(detail))
    return stored


def entry_bytes(at: datetime, event_type: str, message_id: str | None, detail: dict[str, Any]) -> bytes:
    return rfc8785.dumps({"at": iso_utc(at), "event_type": event_type, "message_id": message_id, "detail": detail})


def canonical_detail(detail: dict[str, Any]) -> str:
    """The detail's RFC 8785 JSON: the text the ledger stores in ``events.detail``, so that the stored columns
    are, joined, the entry's canonical bytes (``joined_entry``) and verify hashes what is stored."""
    return rfc8785.dumps(detail).decode()


def joined_entry(at: str, event_type: str, message_id: str | None, detail: str) -> bytes:
    """``entry_bytes`` from its parts: ``at`` as ``iso_utc`` spells it, ``detail`` as ``canonical_detail``.
    RFC 8785 writes an object's members sorted by name, each value canonical: at, detail, event_type,
    message_id (tests/unit/test_leaf_bytes.py checks it equals ``entry_bytes``)."""
    kind, mid = rfc8785.dumps(event_type).decode(), rfc8785.dumps(message_id).decode()
    return f'{{"at":"{at}","detail":{detail},"event_type":{kind},"message_id":{mid}}}'.encode()


def entry_leaf_hash(at: datetime, event_type: str, message_id: str | None, detail: dict[str, Any]) -> str:
    """The entry's RFC 6962 leaf hash, hex: what ``events.leaf_hash`` records when the event is written."""
    return leaf_hash(entry_bytes(at, event_type, message_id, detail)).hex()


def checkpoint_statement(*, tree_size: int, root_hash: str, at: str, key_id: str, log: str = LOG_ID) -> bytes:
    """The bytes a checkpoint's signature covers (``at`` as written by ``iso_utc``)."""
    return rfc8785.dumps({"tree_size": tree_size, "root_hash": root_hash, "at": at, "key_id": key_id, "log": log})
