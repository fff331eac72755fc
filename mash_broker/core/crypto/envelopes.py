"""Sealing an envelope's content to one recipient organisation, and opening it again.

- plaintext: RFC 8785 canonical JSON of the envelope's ``SEALED_FIELDS`` (subject, basis, flags, payload);
- ``info``: binds the message kind and the recipient organisation, so a ciphertext cannot be passed off
  as another kind or re-addressed;
- ``aad``: RFC 8785 over the routing metadata (every readable field but the signature) and the key header
  (alg, recipient_org, key_id), so changing any readable field makes the ciphertext refuse to open.

The sealed envelope goes out unsigned: sign it afterwards (the signature covers what travels). A signature
over the plaintext is never carried, since anyone with the public key could test guesses of a child's name
against it. ``decrypt_payload`` gives the plaintext envelope back without a signature: verify the sealed
envelope's signature before opening it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Protocol

import rfc8785
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from mash_broker.contracts import ContractError, Envelope
from mash_broker.contracts.encrypted import ROUTING_FIELDS, SEALED_FIELDS, EncryptedEnvelope, EncryptedPayload
from mash_broker.core.crypto.hpke import HPKE
from mash_broker.core.crypto.keys import load_public_key
from mash_broker.core.crypto.port import CiphertextInvalid, CiphertextReason, EncryptionRefused, Hpke

INFO_CONTEXT = "mash-broker/payload/v1"
_AAD_FIELDS = set(ROUTING_FIELDS) - {"signature"}


class RecipientKey(Protocol):
    """An organisation's public encryption key as the key registry holds it."""

    @property
    def org(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> str: ...


def payload_info(kind: str, recipient_org: str) -> bytes:
    return rfc8785.dumps({"context": INFO_CONTEXT, "kind": kind, "recipient_org": recipient_org})


def routing_aad(routing: Mapping[str, Any], *, alg: str, recipient_org: str, key_id: str) -> bytes:
    """What is authenticated beside the ciphertext: the readable fields (JSON form) and the key header."""
    header = {"alg": alg, "recipient_org": recipient_org, "key_id": key_id}
    return rfc8785.dumps({**{k: v for k, v in routing.items() if k in _AAD_FIELDS}, "payload": header})


def encrypt_payload(
    envelope: Envelope, recipient_org: str, key: RecipientKey, *, hpke: Hpke = HPKE
) -> EncryptedEnvelope:
    """``envelope`` with its content sealed to ``recipient_org``'s ``key``; routing stays readable, unsigned."""
    if key.org != recipient_org:
        raise EncryptionRefused(
            f"key {key.key_id} belongs to {key.org}, not to {recipient_org}", record=str(envelope.message_id)
        )
    try:
        public = load_public_key(key.public_key)
    except ValueError as exc:
        raise EncryptionRefused(f"public key {key.key_id} {exc}", record=str(envelope.message_id)) from exc
    routing = envelope.model_dump(mode="json", include=_AAD_FIELDS)
    plaintext = rfc8785.dumps(envelope.model_dump(mode="json", include=set(SEALED_FIELDS)))
    aad = routing_aad(routing, alg=hpke.alg, recipient_org=recipient_org, key_id=key.key_id)
    sealed = hpke.seal(public, plaintext, payload_info(envelope.kind, recipient_org), aad)
    payload = EncryptedPayload(
        alg=hpke.alg, recipient_org=recipient_org, key_id=key.key_id, enc=_b64(sealed.enc), ct=_b64(sealed.ciphertext)
    )
    return EncryptedEnvelope(**envelope.model_dump(include=_AAD_FIELDS), payload=payload)


def decrypt_payload(
    envelope: EncryptedEnvelope,
    private_keys: Mapping[str, X25519PrivateKey],
    *,
    recipient_org: str | None = None,
    hpke: Hpke = HPKE,
) -> Envelope:
    """The plaintext envelope (unsigned). ``private_keys``: key id -> private key, the current and retired
    keys of the organisation opening it; ``recipient_org``: that organisation, to refuse what is addressed
    to another. Raises CiphertextInvalid (with a reason code) or ContractError (it opened, but is invalid)."""
    sealed, record = envelope.payload, str(envelope.message_id)
    if recipient_org is not None and sealed.recipient_org != recipient_org:
        raise CiphertextInvalid(
            f"sealed to {sealed.recipient_org}, not to {recipient_org}",
            reason=CiphertextReason.WRONG_RECIPIENT,
            record=record,
            field="payload.recipient_org",
        )
    if sealed.alg != hpke.alg:
        raise CiphertextInvalid(
            f"alg {sealed.alg} is not {hpke.alg}", reason=CiphertextReason.MALFORMED, record=record, field="payload.alg"
        )
    key = private_keys.get(sealed.key_id)
    if key is None:
        raise CiphertextInvalid(
            f"no private key {sealed.key_id} of {sealed.recipient_org} here",
            reason=CiphertextReason.UNKNOWN_KEY,
            record=record,
            field="payload.key_id",
        )
    routing = envelope.model_dump(mode="json", include=_AAD_FIELDS)
    aad = routing_aad(routing, alg=sealed.alg, recipient_org=sealed.recipient_org, key_id=sealed.key_id)
    info = payload_info(envelope.kind, sealed.recipient_org)
    try:
        plaintext = hpke.open(key, _unb64(sealed.enc), _unb64(sealed.ct), info, aad)
    except CiphertextInvalid as exc:
        raise CiphertextInvalid(exc.message, reason=exc.reason, record=record, field="payload.ct") from exc
    return _envelope(routing, plaintext, record)


def _envelope(routing: Mapping[str, Any], plaintext: bytes, record: str) -> Envelope:
    content = json.loads(plaintext)
    if not isinstance(content, dict) or not set(content) <= set(SEALED_FIELDS):
        raise ContractError("the sealed content is not an object of the sealed fields only", record=record)
    try:
        return Envelope.model_validate_json(json.dumps({**routing, **content}))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ContractError(
            f"the sealed content is invalid: {first['msg']}", record=record, field=".".join(map(str, first["loc"]))
        ) from exc


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
