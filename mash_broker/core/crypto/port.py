"""The encryption port: HPKE (RFC 9180) base mode as two calls, and the errors they raise.

What the broker needs from public-key encryption is small: seal bytes to a recipient's public key, and
open them with the matching private key. ``info`` and ``aad`` are bound into the result: opening with any
other ``info`` or ``aad`` (or another key, or a changed byte) is refused, never answered with garbage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from mash_broker.contracts.errors import MashError


class Sealed(NamedTuple):
    """What sealing gives: the encapsulated ephemeral key and the AEAD ciphertext (tag included)."""

    enc: bytes
    ciphertext: bytes


class Hpke(Protocol):
    """Single-shot HPKE base mode over one fixed cipher suite, named by ``alg``."""

    @property
    def alg(self) -> str: ...

    def seal(self, recipient_public_key: X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes) -> Sealed: ...

    def open(
        self, recipient_private_key: X25519PrivateKey, enc: bytes, ciphertext: bytes, info: bytes, aad: bytes
    ) -> bytes: ...


class CiphertextReason(StrEnum):
    """Why a ciphertext was not opened: the reason code a quarantine record and the sender's receipt carry."""

    MALFORMED = "malformed_ciphertext"
    WRONG_RECIPIENT = "wrong_recipient"
    UNKNOWN_KEY = "unknown_encryption_key"
    DOES_NOT_OPEN = "does_not_open"
    CONTENT_INVALID = "sealed_content_invalid"  # it opened, but what was sealed is not a valid envelope's content


class CiphertextInvalid(MashError):
    """A ciphertext cannot be opened here: tampered, malformed, or sealed to another key."""

    code = "ciphertext_invalid"

    def __init__(
        self,
        message: str,
        *,
        reason: CiphertextReason = CiphertextReason.DOES_NOT_OPEN,
        record: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, record=record, field=field)
        self.reason = reason


class EncryptionRefused(MashError):
    """A payload cannot be sealed as asked (no key for the recipient, or a key of another organisation)."""

    code = "encryption_refused"
