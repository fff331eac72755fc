"""The proof file a third party checks offline, with nothing but the file and the gate's public key. Pure.

One format for `mash audit prove` (one message's entries) and `mash audit export` (a period, one
agency): a signed checkpoint, and for each entry its canonical bytes (base64), its index in the tree
and its RFC 6962 audit path to the checkpoint's root.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, Field, StrictInt, ValidationError

from mash_broker.core.audit.entries import (
    CHECKPOINT_ENCODING,
    ENTRY_ENCODING,
    HASHING,
    LOG_ID,
    checkpoint_statement,
    parse_iso_utc,
)
from mash_broker.core.audit.keys import key_id, verify_signature
from mash_broker.core.audit.log import Entry
from mash_broker.core.audit.merkle import leaf_hash, verify_inclusion

PROOF_FORMAT: Final = "mash-broker/audit-proof/v1"
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SignedHead(BaseModel, frozen=True, extra="forbid"):
    """A checkpoint: the gate signed RFC 8785 JSON of every field here but the signature."""

    tree_size: Annotated[StrictInt, Field(ge=0)]
    root_hash: Hex32
    at: str
    key_id: str
    log: str
    signature: str


class ProvenEntry(BaseModel, frozen=True, extra="forbid"):
    """One log entry and its inclusion proof against the checkpoint."""

    seq: StrictInt
    index: Annotated[StrictInt, Field(ge=0)]
    leaf_hash: Hex32
    entry: str  # base64 of the entry's canonical bytes
    audit_path: list[Hex32]


class ProofFile(BaseModel, frozen=True, extra="forbid"):
    format: Literal["mash-broker/audit-proof/v1"] = PROOF_FORMAT
    log: str = LOG_ID
    hashing: str = HASHING
    entry_encoding: str = ENTRY_ENCODING
    checkpoint_encoding: str = CHECKPOINT_ENCODING
    subject: dict[str, Any]
    public_key: str | None = None  # for convenience only: check-proof trusts the key it is given
    checkpoint: SignedHead
    entries: list[ProvenEntry]


@dataclass
class ProofCheck:
    """What checking a proof file found: the decoded entries it proves, or the problems."""

    checkpoint: SignedHead | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    proven: list[Entry] = field(default_factory=list)  # the same entries, typed (``at`` a datetime)

    @property
    def ok(self) -> bool:
        return self.checkpoint is not None and not self.problems


def check_proof(raw: str | bytes, key: Ed25519PublicKey) -> ProofCheck:
    """Verify the checkpoint's signature with ``key`` and every entry's inclusion in the signed tree."""
    result = ProofCheck()
    try:
        proof = ProofFile.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        result.problems.append(f"not a proof file ({where}: {first['msg']})")
        return result
    head = result.checkpoint = proof.checkpoint
    if head.log != LOG_ID:
        result.problems.append(f"the checkpoint is for log {head.log!r}, not {LOG_ID!r}")
    if head.key_id != key_id(key):
        result.problems.append(f"the checkpoint names key {head.key_id}; the key given is {key_id(key)}")
    statement = checkpoint_statement(
        tree_size=head.tree_size, root_hash=head.root_hash, at=head.at, key_id=head.key_id, log=head.log
    )
    if not verify_signature(key, statement, _b64(head.signature)):
        result.problems.append("the checkpoint's signature does not verify with the key given")
    root = bytes.fromhex(head.root_hash)
    for item in proof.entries:
        place = f"entry seq {item.seq}"
        data = _b64(item.entry)
        leaf = leaf_hash(data)
        if item.seq != item.index + 1:
            result.problems.append(f"{place}: index {item.index} is not its position (seq - 1)")
        if leaf.hex() != item.leaf_hash:
            result.problems.append(f"{place}: its bytes do not hash to the leaf hash given")
        path = [bytes.fromhex(h) for h in item.audit_path]
        if not verify_inclusion(leaf, item.index, head.tree_size, path, root):
            result.problems.append(f"{place}: the inclusion proof does not lead to the signed root")
        decoded = _decode(data)
        if decoded is None:
            result.problems.append(f"{place}: its bytes are not canonical (RFC 8785) JSON")
        else:
            result.entries.append({"seq": item.seq, **decoded})
            result.proven.append(_entry(item.seq, decoded, item.leaf_hash))
    return result


def _entry(seq: int, decoded: dict[str, Any], leaf: str) -> Entry:
    try:
        at = parse_iso_utc(str(decoded["at"]))
    except ValueError:
        at = datetime.fromisoformat(str(decoded["at"]))
    return Entry(
        seq=seq,
        at=at,
        event_type=str(decoded["event_type"]),
        message_id=decoded["message_id"],
        detail=decoded["detail"],
        leaf_hash=leaf,
    )


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _decode(data: bytes) -> dict[str, Any] | None:
    """The entry's members, if the bytes are exactly the canonical JSON of them (no duplicate keys)."""
    try:
        decoded = json.loads(data)
        canonical = rfc8785.dumps(decoded)
    except (ValueError, TypeError):
        return None
    if (
        canonical != data
        or not isinstance(decoded, dict)
        or set(decoded) != {"at", "event_type", "message_id", "detail"}
    ):
        return None
    return decoded
