"""Encryption to the recipient: HPKE (RFC 9180) behind a small port, and envelopes sealed with it.

``port`` is the Protocol (seal, open) and its errors; ``hpke`` the one suite we use (base mode,
X25519 / HKDF-SHA256 / AES-256-GCM, through pyhpke); ``keys`` X25519 key ids; ``envelopes`` seals an
envelope's content to one organisation and opens it again. Pure: no file, network or clock here; the
key files are in ``core.audit.keys`` (KeyStore) and the public keys in the key registry. What the gate and
the inboxes decide with it (open what came in, seal each delivery or refuse it) is ``core.sealing``.
"""

from mash_broker.core.crypto.envelopes import decrypt_payload, encrypt_payload, payload_info, routing_aad
from mash_broker.core.crypto.hpke import ALG, HPKE, HpkeBase, open_sequence, seal_with_ephemeral
from mash_broker.core.crypto.keys import encryption_key_id, load_public_key, public_key_b64
from mash_broker.core.crypto.port import CiphertextInvalid, CiphertextReason, EncryptionRefused, Hpke, Sealed

__all__ = [
    "ALG",
    "HPKE",
    "CiphertextInvalid",
    "CiphertextReason",
    "EncryptionRefused",
    "Hpke",
    "HpkeBase",
    "Sealed",
    "decrypt_payload",
    "encrypt_payload",
    "encryption_key_id",
    "load_public_key",
    "open_sequence",
    "payload_info",
    "public_key_b64",
    "routing_aad",
    "seal_with_ephemeral",
]
