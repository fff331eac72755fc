"""Leaf hashes of a page of raw ledger rows, at hashing speed, with nothing an edit can slip past. Pure.

The ledger stores an entry's detail as its RFC 8785 text (``entries.canonical_detail``), so the entry's
canonical bytes are its stored columns joined (``entries.joined_entry``): verify hashes what is stored,
with no JSON parsing or datetime arithmetic per entry. A row arrives as ``RawRow``: ``at`` already spelt
as ``iso_utc`` spells it by the ledger's query (None when the stored value is not in that spelling).

Why a match proves the entry unchanged: if ``SHA-256(0x00 || joined)`` equals the leaf hash recorded when
the entry was written (itself under the signed roots), ``joined`` *is* the entry's canonical bytes as
written. ``at`` has a fixed length and ``event_type`` and ``message_id`` are written as JSON strings (or
null), whose quotes cannot occur unescaped inside each other or inside a canonical string, so every column
is pinned to its own part of those bytes: ``detail`` is exactly the canonical text of the detail as written,
and the others are exactly as written. A row the joined columns do not prove (an entry written before
details were stored canonically, or one edited) is tried as ``sorted_json`` (stdlib ``json``, the parser
the ledger reads details with: sound for the same reason, since it round-trips what it parsed), and a page
with a row neither proves goes back to the full RFC 8785 check (``verify.LogVerifier.add``), which names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import rfc8785

# (seq, at as iso_utc spells it or None, event_type, message_id, detail as stored (text), recorded leaf hash)
RawRow = tuple[int, str | None, Any, Any, Any, str]
AT_LENGTH = len("2026-11-17T07:00:00.000000Z")


class RawEntries(Protocol):
    """The audited log's rows as stored, a page at a time (``mash_broker.storage.audit``)."""

    def raw_entry_pages(self, *, page: int) -> AsyncIterator[Sequence[RawRow]]:
        """Every entry in seq order, as raw columns."""
        ...


def sorted_json(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class LeafHasher:
    """Turns pages of raw rows into leaf hashes, remembering each event type's JSON spelling."""

    def __init__(self) -> None:
        self._types: dict[str, str] = {}

    def _type(self, event_type: Any) -> str | None:
        if type(event_type) is not str:
            return None
        if len(self._types) > 1000:  # event types are a short list; never grow without bound
            self._types.clear()
        spelt = self._types[event_type] = rfc8785.dumps(event_type).decode()
        return spelt

    def leaves(self, rows: Sequence[RawRow]) -> list[bytes] | None:
        """Each row's leaf hash, or None if a row's stored columns do not prove it (see the module doc)."""
        types, texts, sha256 = self._types, [], hashlib.sha256
        parts: list[tuple[str, str, str]] = []
        for _, at, event_type, mid, detail, _ in rows:
            spelt = types.get(event_type) if type(event_type) is str else None
            if spelt is None and (spelt := self._type(event_type)) is None:
                return None
            if mid is None:
                mid_json = "null"
            elif type(mid) is str and '"' not in mid and "\\" not in mid and mid.isprintable():
                mid_json = f'"{mid}"'
            else:
                return None
            if type(at) is not str or len(at) != AT_LENGTH or type(detail) is not str:
                return None
            texts.append(f'\x00{{"at":"{at}","detail":{detail},"event_type":{spelt},"message_id":{mid_json}}}')
            parts.append((at, spelt, mid_json))
        try:
            encoded = [text.encode() for text in texts]
        except UnicodeEncodeError:  # a lone surrogate: RFC 8785 refuses it, so the full check names the row
            return None
        digests = [sha256(data).digest() for data in encoded]
        recorded = [row[5] for row in rows]
        if [d.hex() for d in digests] == recorded:
            return digests
        for i, digest in enumerate(digests):
            if digest.hex() != recorded[i]:
                digests[i] = _as_sorted_json(parts[i], rows[i])
                if not digests[i]:
                    return None
        return digests


def _as_sorted_json(parts: tuple[str, str, str], row: RawRow) -> bytes:
    """The leaf hash with the detail re-serialised by ``sorted_json`` if that proves the row, else b""."""
    at, spelt, mid_json = parts
    try:
        detail = sorted_json(json.loads(row[4]))
        data = f'\x00{{"at":"{at}","detail":{detail},"event_type":{spelt},"message_id":{mid_json}}}'.encode()
    except (ValueError, TypeError, UnicodeEncodeError):
        return b""
    digest = hashlib.sha256(data).digest()
    return digest if digest.hex() == row[5] else b""
