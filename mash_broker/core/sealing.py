"""Encryption to the recipient at the gate's edges: what comes in sealed to the gate, what goes out sealed
to each recipient, and what an inbox opens. Pure apart from the keys passed in.

- ``read_inbound``: one record as a plaintext ``Envelope``, an ``EncryptedEnvelope`` (content sealed to the
  gate) or why it is neither, with the same checks and answers as ``core.intake``;
- ``open_inbound``: a sealed record opened with the gate's private keys (current and retired), or a
  ``CiphertextInvalid`` carrying the reason a quarantine record and the sender's receipt give. Verify the
  sealed envelope's signature first (``core.signing.verify`` takes it): it covers what travelled;
- ``seal_delivery``: a delivery sealed to its recipient's key in force, or, when the recipient has none, what
  its agreement says: ``Refused`` (the default) or ``TlsOnly`` (sent readable, with a warning to record);
- ``keys_in_force``: the key lookup over the key registry at one moment (a delivery now; a replay now too,
  so it is sealed to the keys in force when it is re-sent, not when it was first sent);
- ``open_delivery``: an inbox's side, a delivery opened with its recipient's private keys.

Sealing leaves the result unsigned: sign it afterwards (``core.signing.sign``), so the signature covers the
ciphertext. Nothing here logs, and no reason or detail carries a value from inside a ciphertext.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from mash_broker.consent_gate import Policy, WithoutRecipientKey
from mash_broker.contracts import ContractError, Delivery, EncryptedEnvelope, Envelope
from mash_broker.core.crypto import CiphertextInvalid, CiphertextReason, EncryptionRefused, decrypt_payload
from mash_broker.core.crypto.envelopes import RecipientKey, encrypt_payload
from mash_broker.core.intake import (
    CONTRACT_INVALID,
    MAX_DEPTH,
    UNREADABLE,
    WHOLE_RECORD,
    Unreadable,
    field_problems,
    nesting_depth,
)
from mash_broker.core.intake import read_envelope as read_plaintext
from mash_broker.core.messages import GATE_ORG, MAX_MESSAGE_BYTES
from mash_broker.core.signing.keys import KeyMissing
from mash_broker.core.signing.registry import KeyRegistry

# Key id -> private key: the current and retired encryption keys of the organisation opening a message.
PrivateKeys = Mapping[str, X25519PrivateKey]
# Organisation -> its public encryption key in force (None: it has none).
KeyLookup = Callable[[str], RecipientKey | None]

# The reason code of a delivery not sealed because its recipient has no encryption key in force: the
# refusal's (``refuse``) or the warning's (``tls_only``).
NO_RECIPIENT_KEY = "recipient_encryption_key_missing"
# The key is registered but cannot be sealed to (not an X25519 key of that organisation).
KEY_UNUSABLE = "recipient_encryption_key_unusable"

# A sealed record has a "ct" member (in its payload); a plaintext one almost never has, so every other
# record goes straight to ``core.intake`` as before, parsed once.
_SEALED_MARK = re.compile(rb'"ct"\s*:')


@dataclass(frozen=True, slots=True)
class Refused:
    """A delivery not sent: a reason code, and a detail naming no value."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class TlsOnly:
    """A delivery sent readable (its agreement allows TLS alone), and the warning to record beside it."""

    envelope: Envelope
    reason: str
    detail: str


# -- inbound: records sealed to the gate ----------------------------------------------------------------------


def read_inbound(raw: bytes) -> Envelope | EncryptedEnvelope | Unreadable:
    """``raw`` as a plaintext envelope, an envelope sealed to the gate, or why it is neither. Never raises.

    A plaintext record, and any record that fails a check before its contract (size, nesting, UTF-8, JSON,
    a key given twice), is answered by ``core.intake.read_envelope`` exactly as before."""
    if _SEALED_MARK.search(raw) is None or len(raw) > MAX_MESSAGE_BYTES or nesting_depth(raw) > MAX_DEPTH:
        return read_plaintext(raw)
    try:
        doc = json.loads(raw, object_pairs_hook=_unique_keys)
    except Exception:  # not JSON, not UTF-8, a key twice: intake names what is wrong
        return read_plaintext(raw)
    payload = doc.get("payload") if isinstance(doc, dict) else None
    if not isinstance(payload, dict) or "ct" not in payload:
        return read_plaintext(raw)
    try:
        return EncryptedEnvelope.model_validate_json(raw)
    except ValidationError as err:
        return Unreadable(CONTRACT_INVALID, field_problems(err))
    except Exception as exc:  # whatever else a record provokes is the record's
        return Unreadable(UNREADABLE, ((WHOLE_RECORD, f"cannot be read ({type(exc).__name__})"),))


def open_inbound(
    sealed: bytes | EncryptedEnvelope, gate_keys: PrivateKeys, *, recipient_org: str = GATE_ORG
) -> Envelope | CiphertextInvalid:
    """The plaintext envelope (unsigned) of a record sealed to ``recipient_org`` (the gate), opened with
    ``gate_keys`` (its current and retired keys), or why it cannot be: ``CiphertextInvalid.reason`` is
    ``wrong_recipient`` (sealed to another organisation), ``unknown_encryption_key`` (to a key not held
    here), ``does_not_open`` (tampered: a readable field, the key header or the ciphertext changed),
    ``malformed_ciphertext`` (not a sealed envelope at all) or ``sealed_content_invalid`` (it opened, but
    its content breaks the envelope's contract). Returned, never raised."""
    if isinstance(sealed, bytes):
        read = read_inbound(sealed)
        if not isinstance(read, EncryptedEnvelope):
            detail = read.detail if isinstance(read, Unreadable) else "a plaintext envelope, not a sealed one"
            return CiphertextInvalid(detail, reason=CiphertextReason.MALFORMED)
        sealed = read
    try:
        return decrypt_payload(sealed, gate_keys, recipient_org=recipient_org)
    except CiphertextInvalid as exc:
        return exc
    except ContractError as exc:
        return CiphertextInvalid(
            exc.message, reason=CiphertextReason.CONTENT_INVALID, record=exc.record, field=exc.field
        )


# -- outbound: deliveries sealed to their recipient -----------------------------------------------------------


def keys_in_force(registry: KeyRegistry, now: datetime) -> KeyLookup:
    """Each organisation's public encryption key in force at ``now`` in ``registry`` (the one that began
    last of those valid then). A replay passes its own ``now``: it seals to the keys in force today."""

    def lookup(org: str) -> RecipientKey | None:
        return registry.encryption_key_in_force(org, now)

    return lookup


def require_key(lookup: KeyLookup, org: str) -> RecipientKey:
    """``org``'s key in force, or KeyMissing saying how to make one (a sender sealing to the gate)."""
    key = lookup(org)
    if key is None:
        raise KeyMissing(
            f"no encryption key of {org} in force in the key registry: create one with "
            f"`mash keys encryption new {org}` where {org}'s private keys are kept"
        )
    return key


def seal_delivery(
    envelope: Envelope, recipient_org: str, key_lookup: KeyLookup, rule: WithoutRecipientKey
) -> EncryptedEnvelope | TlsOnly | Refused:
    """``envelope`` (a delivery) with its content sealed to ``recipient_org``'s key in force, unsigned.

    Without a key in force, ``rule`` (the releasing agreement's ``without_recipient_key``) decides:
    ``refuse`` gives ``Refused`` (nothing is sent), ``tls_only`` the envelope as it is, with the warning
    to record. A registered key that cannot be sealed to is refused whatever the rule: that is a broken
    registry, not a recipient without a key."""
    key = key_lookup(recipient_org)
    if key is None:
        detail = f"{recipient_org} has no encryption key in force"
        if rule is WithoutRecipientKey.TLS_ONLY:
            return TlsOnly(envelope, NO_RECIPIENT_KEY, f"{detail}: sent over TLS alone, as its agreement allows")
        return Refused(NO_RECIPIENT_KEY, f"{detail}, and its agreement refuses to send without one")
    try:
        return encrypt_payload(envelope, recipient_org, key)
    except EncryptionRefused as exc:
        return Refused(KEY_UNUSABLE, exc.message)


def rule_for(policy: Policy, agreement: str) -> WithoutRecipientKey:
    """The ``without_recipient_key`` of ``policy``'s agreement named ``agreement`` (a release's); an
    agreement not found refuses, the safe default."""
    found = policy.agreement(agreement)
    return found.without_recipient_key if found is not None else WithoutRecipientKey.REFUSE


# -- an inbox: deliveries sealed to the organisations it holds ------------------------------------------------


def open_delivery(
    raw: bytes, private_keys_of: Callable[[str], PrivateKeys]
) -> Envelope | CiphertextInvalid | Unreadable:
    """A delivery as its recipient reads it. Sealed: opened with ``private_keys_of(recipient_org)``, that
    organisation's current and retired keys (``KeyStore.encryption_keys``), so rotation keeps old deliveries
    readable; refused if what opened is not a delivery to that organisation. Plaintext (an agreement's
    ``tls_only``): returned as it is. Never raises."""
    read = read_inbound(raw)
    if not isinstance(read, EncryptedEnvelope):
        return read
    org = read.payload.recipient_org
    opened = open_inbound(read, private_keys_of(org), recipient_org=org)
    if isinstance(opened, Envelope):
        payload = opened.payload
        if not isinstance(payload, Delivery) or payload.recipient != org:
            return CiphertextInvalid(
                f"sealed to {org} but not a delivery to it",
                reason=CiphertextReason.WRONG_RECIPIENT,
                record=str(opened.message_id),
                field="payload.recipient",
            )
    return opened


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key given twice")
    return out
