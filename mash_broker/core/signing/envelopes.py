"""Signing and verifying envelopes: Ed25519 over the RFC 8785 canonical JSON of everything but the signature.

A signature is ``ed25519:<key_id>:<base64>``. A message is judged by the key its signature names and
that key's validity when the message was produced, so messages signed with an old key still verify
after a new key is added (rotation loses nothing in flight).

A sealed envelope (``EncryptedEnvelope``, content sealed to its recipient) is signed and checked the same
way, over what travels: its readable routing and the ciphertext, so the signature covers what a topic holds.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import rfc8785

from mash_broker.contracts import EncryptedEnvelope, Envelope
from mash_broker.core.audit.keys import Signer, load_public_key, verify_signature
from mash_broker.core.signing.registry import KeyRegistry

ALGORITHM = "ed25519"
SIGNATURE_BYTES = 64
# A message may be stamped a little ahead of the gate's clock (clock skew), never more.
FUTURE_TOLERANCE = timedelta(minutes=5)
# What is signed: a plaintext envelope, or one whose content is sealed to its recipient.
Signable = TypeVar("Signable", Envelope, EncryptedEnvelope)
_SIGNATURE = re.compile(rf"{ALGORITHM}:(?P<key_id>[0-9a-f]{{16}}):(?P<sig>[A-Za-z0-9+/]+={{0,2}})")


class SignatureReason(StrEnum):
    """Why a signature was not accepted: the reason code a quarantine record and receipt carry."""

    UNSIGNED = "unsigned"
    MALFORMED_SIGNATURE = "malformed_signature"
    UNKNOWN_KEY = "unknown_key"
    SENDER_MISMATCH = "sender_mismatch"
    KEY_NOT_VALID = "key_not_valid"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a signature check: ok, or a reason code and a detail without personal data."""

    reason: SignatureReason | None
    detail: str
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def canonical_bytes(envelope: Envelope | EncryptedEnvelope) -> bytes:
    """What is signed: RFC 8785 (JCS) over the envelope's JSON, the signature itself left out."""
    return rfc8785.dumps(envelope.model_dump(mode="json", exclude={"signature"}))


def sign(envelope: Signable, key: Signer) -> Signable:
    """The envelope with ``key``'s signature (any earlier signature is replaced)."""
    raw = key.sign(canonical_bytes(envelope))
    return envelope.model_copy(
        update={"signature": f"{ALGORITHM}:{key.key_id}:{base64.b64encode(raw).decode('ascii')}"}
    )


def verify(
    envelope: Envelope | EncryptedEnvelope,
    registry: KeyRegistry,
    now: datetime,
    *,
    delegates: Mapping[str, str] | None = None,
) -> Verdict:
    """Check ``envelope``'s signature against ``registry`` at ``now``.

    ``delegates`` maps a signing organisation to the sender prefix it may sign for (for example the
    gate signing school acknowledgements on a school's behalf); by default a key signs only for its
    own organisation.
    """
    if envelope.signature is None:
        return Verdict(SignatureReason.UNSIGNED, "the message carries no signature")
    match = _SIGNATURE.fullmatch(envelope.signature)
    raw = _decode(match["sig"]) if match else None
    if match is None or raw is None:
        return Verdict(
            SignatureReason.MALFORMED_SIGNATURE,
            f"a signature is {ALGORITHM}:<16 hex digit key id>:<base64 of {SIGNATURE_BYTES} bytes>",
        )
    key_id = match["key_id"]
    key = registry.find(key_id)
    if key is None:
        return Verdict(SignatureReason.UNKNOWN_KEY, f"key {key_id} is not in the key registry", key_id)
    if key.org != envelope.sender_org and not _delegated(key.org, envelope.sender_org, delegates):
        return Verdict(
            SignatureReason.SENDER_MISMATCH,
            f"key {key_id} belongs to {key.org}, not to the sender {envelope.sender_org}",
            key_id,
        )
    produced = envelope.produced_at
    if produced > now + FUTURE_TOLERANCE:
        return Verdict(
            SignatureReason.KEY_NOT_VALID,
            f"produced_at is more than {FUTURE_TOLERANCE} ahead of the gate's clock",
            key_id,
        )
    if not key.valid_at(produced):
        return Verdict(
            SignatureReason.KEY_NOT_VALID, f"key {key_id} was not valid at produced_at (valid {key.validity()})", key_id
        )
    if not verify_signature(load_public_key(key.public_key), canonical_bytes(envelope), raw):
        return Verdict(
            SignatureReason.BAD_SIGNATURE, f"the signature does not match the message under key {key_id}", key_id
        )
    return Verdict(None, f"signed by {key.org} with key {key_id}", key_id)


def _decode(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None


def _delegated(signer: str, sender: str, delegates: Mapping[str, str] | None) -> bool:
    prefix = (delegates or {}).get(signer)
    return prefix is not None and sender.startswith(prefix)
