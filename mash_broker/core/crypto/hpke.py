"""HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, through ``pyhpke``.

Suite ids: KEM 0x0020, KDF 0x0001, AEAD 0x0002. ``pyhpke`` does the labelled extract/expand ("HPKE-v1" and
the suite ids), the mode_base key schedule and nonce = base_nonce XOR seq; ``tests/unit/test_hpke.py``
checks all of that against the RFC's own test vector for this suite. Every failure to open (bad ``enc``,
wrong key, changed byte, other ``info`` or ``aad``) is one typed ``CiphertextInvalid``: which of them it was
is deliberately not told apart (it cannot be, and guessing would help an attacker).
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey, KEMKeyPair, PyHPKEError

from mash_broker.core.crypto.port import CiphertextInvalid, CiphertextReason, EncryptionRefused, Sealed

ALG = "HPKE-base-X25519-SHA256-AES256GCM"
ENC_BYTES = 32  # Nenc for DHKEM(X25519, HKDF-SHA256)
TAG_BYTES = 16  # Nt for AES-256-GCM

_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def seal(recipient_public_key: X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes) -> Sealed:
    """SealBase(pkR, info, aad, pt) with a fresh ephemeral key."""
    return _seal(recipient_public_key, plaintext, info, aad, None)


def seal_with_ephemeral(
    recipient_public_key: X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes, ephemeral: X25519PrivateKey
) -> Sealed:
    """SealBase with a given ephemeral key: deterministic, for checking against test vectors only.

    Never use a fixed ephemeral key for real messages: reusing one with the same recipient reuses the key.
    """
    pair = KEMKeyPair(
        KEMKey.from_pyca_cryptography_key(ephemeral), KEMKey.from_pyca_cryptography_key(ephemeral.public_key())
    )
    return _seal(recipient_public_key, plaintext, info, aad, pair)


def open(  # the RFC's name for the operation (shadows the builtin; this module does no file I/O)
    recipient_private_key: X25519PrivateKey, enc: bytes, ciphertext: bytes, info: bytes, aad: bytes
) -> bytes:
    """OpenBase(enc, skR, info, aad, ct); ``CiphertextInvalid`` if it does not open."""
    (plaintext,) = open_sequence(recipient_private_key, enc, info, [(ciphertext, aad)])
    return plaintext


def open_sequence(
    recipient_private_key: X25519PrivateKey, enc: bytes, info: bytes, messages: Iterable[tuple[bytes, bytes]]
) -> list[bytes]:
    """Open ``(ciphertext, aad)`` pairs sealed in order under one context (sequence numbers 0, 1, 2...)."""
    if len(enc) != ENC_BYTES:
        raise CiphertextInvalid(f"enc is {len(enc)} bytes, not {ENC_BYTES}", reason=CiphertextReason.MALFORMED)
    try:
        context = _SUITE.create_recipient_context(enc, KEMKey.from_pyca_cryptography_key(recipient_private_key), info)
        return [context.open(ciphertext, aad) for ciphertext, aad in messages]
    except (PyHPKEError, ValueError) as exc:  # ValueError: an all-zero X25519 shared secret (small-order enc)
        raise CiphertextInvalid("the ciphertext does not open with this key, info and aad") from exc


class HpkeBase:
    """The module's functions as the ``Hpke`` port."""

    alg = ALG

    def seal(self, recipient_public_key: X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes) -> Sealed:
        return seal(recipient_public_key, plaintext, info, aad)

    def open(
        self, recipient_private_key: X25519PrivateKey, enc: bytes, ciphertext: bytes, info: bytes, aad: bytes
    ) -> bytes:
        return open(recipient_private_key, enc, ciphertext, info, aad)


HPKE = HpkeBase()


def _seal(
    recipient_public_key: X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes, ephemeral: KEMKeyPair | None
) -> Sealed:
    try:
        enc, context = _SUITE.create_sender_context(
            KEMKey.from_pyca_cryptography_key(recipient_public_key), info, eks=ephemeral
        )
    except ValueError as exc:  # a small-order public key gives an all-zero shared secret
        raise EncryptionRefused("the recipient's public key is not usable for X25519") from exc
    return Sealed(enc, context.seal(plaintext, aad))
