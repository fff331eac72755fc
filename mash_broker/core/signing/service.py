"""Signing wired to the key store and registry: the gate's verifier, who signs what, and making keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mash_broker.contracts import EncryptedEnvelope, Envelope
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore, public_key_b64
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.settings import Settings
from mash_broker.core.signing.envelopes import Verdict, sign, verify
from mash_broker.core.signing.keys import existing_signer, rotate
from mash_broker.core.signing.registry import KeyRegistry, RegisteredKey
from mash_broker.core.signing.registry_file import RegistryFile, register_key

log = get_logger("mash.signing")

# The gate signs acknowledgements on behalf of schools without a key of their own (see Signers):
# a verifier of those (police) passes ``delegates=ON_BEHALF`` to ``verify``.
ON_BEHALF = {GATE_ORG: "school:"}


@dataclass
class Verifier:
    """What the gate checks inbound signatures with. ``required``: refuse what does not verify."""

    registry: Callable[[], KeyRegistry]
    required: bool = True

    def check(self, envelope: Envelope | EncryptedEnvelope, now: datetime) -> Verdict:
        return verify(envelope, self.registry(), now)

    @classmethod
    def of(cls, registry: KeyRegistry, *, required: bool = True) -> Verifier:
        """A verifier over a fixed registry (tests, tools)."""
        return cls(registry=lambda: registry, required=required)

    @classmethod
    def from_file(cls, path: Path, *, required: bool = True) -> Verifier:
        """A verifier over a registry file: read now (PolicyError if invalid), and again when it changes."""
        source = RegistryFile(path)
        source.load()
        return cls(registry=source, required=required)


class Signers:
    """Signs an envelope with its sender's own key if this installation holds one, else with the gate's.

    School acknowledgements (delivered, read) are made by the hub that hosts the school inboxes: a school
    with its own key (`mash keys new school:<URN>`) signs its own; otherwise the gate signs on the school's
    behalf and verifiers accept that through ``ON_BEHALF``. With neither key it goes unsigned, logged.
    """

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    def __call__(self, envelope: Envelope) -> Envelope:
        key = existing_signer(self.store, envelope.sender_org) or existing_signer(self.store, GATE_ORG)
        if key is None:
            log.warning("signature.no_key", message_id=str(envelope.message_id), agency=envelope.sender_org)
            return envelope
        return sign(envelope, key)


def new_key(
    store: KeyStore, registry: Path, org: str, now: datetime, valid_days: int | None = None
) -> tuple[Ed25519Signer, RegisteredKey]:
    """`mash keys new`: a new key pair for ``org``, its public key added to the registry file.

    Earlier keys of ``org`` stay in the registry (overlapping validity), so what they signed and is
    still in flight verifies.
    """
    key = rotate(store, org)
    entry = registry_entry(org, key, now, valid_days)
    register_key(registry, entry)
    return key, entry


def ensure_key(store: KeyStore, registry: Path, org: str, now: datetime) -> Ed25519Signer:
    """``org``'s current key, created if the store has none, and in the registry file."""
    key = store.signer(org)
    if RegistryFile(registry).load().find(key.key_id) is None:
        register_key(registry, registry_entry(org, key, now, None))
    return key


def registry_entry(org: str, key: Ed25519Signer, now: datetime, valid_days: int | None) -> RegisteredKey:
    start = now.replace(microsecond=0)
    return RegisteredKey(
        org=org,
        key_id=key.key_id,
        public_key=public_key_b64(key.public_key),
        valid_from=start,
        valid_until=start + timedelta(days=valid_days) if valid_days else None,
    )


@dataclass(frozen=True)
class StackSigning:
    """Signing for a running stack: the gate's verifier, the gate's own key, and the ack signer."""

    verifier: Verifier
    gate: Ed25519Signer | None
    acks: Signers

    @classmethod
    def from_settings(cls, keys_dir: Path, registry: Path, *, required: bool) -> StackSigning:
        """Reads the registry (PolicyError if invalid); creates no key (`mash up` ensures the gate's)."""
        store = KeyStore(keys_dir)
        return cls(
            verifier=Verifier.from_file(registry, required=required),
            gate=existing_signer(store, GATE_ORG),
            acks=Signers(store),
        )


def ensure_gate_key(settings: Settings, now: datetime) -> Ed25519Signer:
    """Before the gate starts: its `mash:gate` key exists and is in the registry, so what it signs verifies."""
    return ensure_key(KeyStore(settings.keys_dir), settings.key_registry_file, GATE_ORG, now)
