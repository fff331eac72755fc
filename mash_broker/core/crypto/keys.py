"""X25519 encryption keys: key ids and the raw base64 form the key registry holds.

A key id is the first 16 hex digits of SHA-256 over the raw 32-byte public key, as for signing keys, so
an envelope can name the key it was sealed to and the recipient pick the private key that opens it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

PUBLIC_KEY_BYTES = 32
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def public_raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def encryption_key_id(key: X25519PublicKey) -> str:
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def public_key_b64(key: X25519PublicKey) -> str:
    return base64.b64encode(public_raw(key)).decode("ascii")


def load_public_key(text: str) -> X25519PublicKey:
    """The base64 of a raw 32-byte X25519 public key; ValueError saying what is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"is {len(raw)} bytes; an X25519 public key is {PUBLIC_KEY_BYTES}")
    return X25519PublicKey.from_public_bytes(raw)


def private_key_pem(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
