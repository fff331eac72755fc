"""Signing for tests: a key store and registry in a temporary folder, as `mash keys new` makes them.

``Keyring(tmp_path / "keys")`` matches ``Settings(data_dir=tmp_path)``: the app built on those settings
verifies against the same registry and signs with the same `mash:gate` key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mash_broker.contracts import Envelope
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.signing import KeyRegistry, Verifier, ensure_key, load_registry, new_key, sign

# Keys made here are valid from well before any test's clock.
VALID_FROM = datetime(2026, 1, 1, tzinfo=UTC)


class Keyring:
    """Private keys and the public registry for a test; every organisation's key is made on first use."""

    def __init__(self, directory: Path, valid_from: datetime = VALID_FROM) -> None:
        self.directory = directory
        self.store = KeyStore(directory)
        self.registry_file = directory / "registry.toml"
        self.valid_from = valid_from

    def key(self, org: str) -> Ed25519Signer:
        """``org``'s current key, made and registered if it has none."""
        return ensure_key(self.store, self.registry_file, org, self.valid_from)

    def rotate(self, org: str, at: datetime) -> Ed25519Signer:
        """A new current key for ``org``, valid from ``at``; the old one stays registered."""
        return new_key(self.store, self.registry_file, org, at)[0]

    def sign(self, envelope: Envelope) -> Envelope:
        """Signed as its sender signs it."""
        return sign(envelope, self.key(envelope.sender_org))

    def gate(self) -> Ed25519Signer:
        return self.key(GATE_ORG)

    @property
    def registry(self) -> KeyRegistry:
        return load_registry(self.registry_file)

    def verifier(self, *, required: bool = True) -> Verifier:
        return Verifier.from_file(self.registry_file, required=required)


def wire(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()
