"""Signed envelopes: Ed25519 over RFC 8785 canonical JSON, checked against a key registry file.

The crypto sits behind the small port in ``broker.audit.keys`` (key store, signer, public keys), shared
with the audited log's checkpoints; this package works on envelopes, the registry and reason codes.
"""

from mash_broker.core.audit.keys import Signer
from mash_broker.core.signing.envelopes import FUTURE_TOLERANCE, SignatureReason, Verdict, canonical_bytes, sign, verify
from mash_broker.core.signing.keys import KeyMissing, existing_signer, require_signer, rotate
from mash_broker.core.signing.registry import KeyRegistry, RegisteredKey, dump_registry, load_registry, parse_registry
from mash_broker.core.signing.registry_file import RegistryFile, register_key
from mash_broker.core.signing.service import (
    ON_BEHALF,
    Signers,
    StackSigning,
    Verifier,
    ensure_gate_key,
    ensure_key,
    new_key,
    registry_entry,
)

__all__ = [
    "FUTURE_TOLERANCE",
    "ON_BEHALF",
    "KeyMissing",
    "KeyRegistry",
    "RegisteredKey",
    "RegistryFile",
    "SignatureReason",
    "Signer",
    "Signers",
    "StackSigning",
    "Verdict",
    "Verifier",
    "canonical_bytes",
    "dump_registry",
    "ensure_gate_key",
    "ensure_key",
    "existing_signer",
    "load_registry",
    "new_key",
    "parse_registry",
    "register_key",
    "registry_entry",
    "require_signer",
    "rotate",
    "sign",
    "verify",
]
