"""An inbox opens a delivery sealed to one of the organisations it holds with that organisation's keys, current
and retired (core.sealing.open_delivery): rotation keeps old deliveries readable; another organisation's
keys, or a sealed message that is not a delivery to its addressee, are refused with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mash_broker.consent_gate import WithoutRecipientKey
from mash_broker.contracts import Delivery, EncryptedEnvelope, Envelope
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.crypto import CiphertextInvalid, CiphertextReason, encrypt_payload
from mash_broker.core.intake import CONTRACT_INVALID, Unreadable
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.sealing import TlsOnly, keys_in_force, open_delivery, seal_delivery
from mash_broker.core.signing.registry import load_registry
from mash_broker.core.signing.registry_file import new_encryption_key

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
SCHOOL, OTHER_SCHOOL = "school:900001", "school:900002"
GIVEN, DOB = "Zebedee", "2016-05-12"  # synthetic


def delivery(to: str = SCHOOL) -> Envelope:
    source = uuid.uuid4()
    return Envelope(
        message_id=uuid.uuid4(),
        kind="delivery",
        sender_org=GATE_ORG,
        correlation_id=uuid.uuid4(),
        causation_id=source,
        produced_at=NOW,
        payload=Delivery(
            source_message_id=source,
            source_kind="notification.encompass",
            recipient=to,
            purpose="operation_encompass",
            content_level="full",
            released={"subject.given_name": GIVEN, "subject.date_of_birth": DOB},
            policy_version="example-area-2026.11-5",
            decision_reasons=("share",),
        ),
    )


def sealed_for(env: Envelope, org: str, path: Path, now: datetime = NOW) -> bytes:
    out = seal_delivery(env, org, keys_in_force(load_registry(path), now), WithoutRecipientKey.REFUSE)
    assert isinstance(out, EncryptedEnvelope)
    return out.model_dump_json().encode()


def test_a_sealed_delivery_opens_with_its_recipients_keys_before_and_after_rotation(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    new_encryption_key(store, path, SCHOOL, NOW - timedelta(days=10))
    old = delivery()
    old_raw = sealed_for(old, SCHOOL, path, NOW - timedelta(days=5))
    new_encryption_key(store, path, SCHOOL, NOW - timedelta(days=1))  # rotation
    new = delivery()
    new_raw = sealed_for(new, SCHOOL, path)

    assert EncryptedEnvelope.model_validate_json(old_raw).payload.key_id != (
        EncryptedEnvelope.model_validate_json(new_raw).payload.key_id
    )
    assert GIVEN.encode() not in old_raw
    assert DOB.encode() not in new_raw
    assert open_delivery(old_raw, store.encryption_keys) == old
    assert open_delivery(new_raw, store.encryption_keys) == new


def test_a_delivery_for_an_organisation_whose_keys_are_not_here_is_refused(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    new_encryption_key(store, path, SCHOOL, NOW - timedelta(days=1))
    new_encryption_key(store, path, OTHER_SCHOOL, NOW - timedelta(days=1))
    raw = sealed_for(delivery(), SCHOOL, path)

    def only_the_other_school(org: str) -> Mapping[str, X25519PrivateKey]:
        return store.encryption_keys(OTHER_SCHOOL) if org == OTHER_SCHOOL else {}

    opened = open_delivery(raw, only_the_other_school)

    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.UNKNOWN_KEY


def test_a_wrong_key_for_the_addressee_does_not_open(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    entry = new_encryption_key(store, path, SCHOOL, NOW - timedelta(days=1))
    raw = sealed_for(delivery(), SCHOOL, path)

    opened = open_delivery(raw, lambda _org: {entry.key_id: X25519PrivateKey.generate()})

    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.DOES_NOT_OPEN


def test_a_sealed_message_that_is_not_a_delivery_to_its_addressee_is_refused(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    entry = new_encryption_key(store, path, SCHOOL, NOW - timedelta(days=1))
    # Sealed to the school, but the delivery inside names another school.
    raw = encrypt_payload(delivery(to=OTHER_SCHOOL), SCHOOL, entry).model_dump_json().encode()

    opened = open_delivery(raw, store.encryption_keys)

    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.WRONG_RECIPIENT
    assert opened.field == "payload.recipient"


def test_a_tls_only_delivery_is_read_as_it_is_and_a_broken_one_is_unreadable(tmp_path: Path) -> None:
    env = delivery()
    tls = seal_delivery(env, SCHOOL, lambda _org: None, WithoutRecipientKey.TLS_ONLY)
    assert isinstance(tls, TlsOnly)

    assert open_delivery(tls.envelope.model_dump_json().encode(), KeyStore(tmp_path).encryption_keys) == env
    broken = open_delivery(b'{"message_id": "x", "payload": {"ct": "AAAA"}}', KeyStore(tmp_path).encryption_keys)
    assert isinstance(broken, Unreadable)
    assert broken.reason == CONTRACT_INVALID
