"""The gate's sealing decisions (core.sealing), pure: a record sealed to the gate is read, its signature checked
over what travelled, and opened, or refused with its reason; a delivery is sealed to its recipient's key in
force, or refused / sent over TLS alone as its agreement says; rotation keeps old records opening."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mash_broker.consent_gate import WithoutRecipientKey
from mash_broker.contracts import Delivery, EncryptedEnvelope, EncryptedPayload, Envelope
from mash_broker.contracts.encrypted import ROUTING_FIELDS, SEALED_FIELDS
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore
from mash_broker.core.crypto import (
    HPKE,
    CiphertextInvalid,
    CiphertextReason,
    encrypt_payload,
    encryption_key_id,
    payload_info,
    public_key_b64,
    routing_aad,
)
from mash_broker.core.intake import CONTRACT_INVALID, DUPLICATE_KEY, TOO_LARGE, Unreadable, read_envelope
from mash_broker.core.messages import GATE_ORG, MAX_MESSAGE_BYTES
from mash_broker.core.sealing import (
    KEY_UNUSABLE,
    NO_RECIPIENT_KEY,
    Refused,
    TlsOnly,
    keys_in_force,
    open_inbound,
    read_inbound,
    seal_delivery,
)
from mash_broker.core.signing import KeyRegistry, RegisteredKey, SignatureReason, registry_entry, sign, verify
from mash_broker.core.signing.registry import RegisteredEncryptionKey, load_registry
from mash_broker.core.signing.registry_file import new_encryption_key

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
POLICE, SCHOOL, OTHER_SCHOOL = "police:examplepolice", "school:900001", "school:900002"
GIVEN, FAMILY, DOB = "Zebedee", "Quillfeather", "2016-05-12"  # synthetic

POLICE_SIGNER, GATE_SIGNER = Ed25519Signer(Ed25519PrivateKey.generate()), Ed25519Signer(Ed25519PrivateKey.generate())
GATE_KEY, SCHOOL_KEY, STRAY_KEY = (X25519PrivateKey.generate() for _ in range(3))


def entry(org: str, key: X25519PrivateKey, **validity: datetime) -> RegisteredEncryptionKey:
    public = key.public_key()
    start = validity.pop("valid_from", NOW - timedelta(days=30))
    return RegisteredEncryptionKey(
        org=org, key_id=encryption_key_id(public), public_key=public_key_b64(public), valid_from=start, **validity
    )


def keys(*private: X25519PrivateKey) -> dict[str, X25519PrivateKey]:
    return {encryption_key_id(k.public_key()): k for k in private}


GATE_ENTRY, SCHOOL_ENTRY = entry(GATE_ORG, GATE_KEY), entry(SCHOOL, SCHOOL_KEY)
SIGNING: tuple[RegisteredKey, ...] = (
    registry_entry(POLICE, POLICE_SIGNER, NOW - timedelta(days=30), None),
    registry_entry(GATE_ORG, GATE_SIGNER, NOW - timedelta(days=30), None),
)
REGISTRY = KeyRegistry(key=SIGNING, encryption_key=(GATE_ENTRY, SCHOOL_ENTRY))


def notification() -> Envelope:
    occurred = NOW - timedelta(hours=9)
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "notification.encompass",
            "sender_org": POLICE,
            "sender_local_id": "EXP/2026/1001",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": {"given_name": GIVEN, "family_name": FAMILY, "date_of_birth": DOB},
            "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
            "payload": {
                "kind": "notification.encompass",
                "police_reference": "EXP/2026/1001",
                "force": "examplepolice",
                "occurred_at": occurred,
                "reported_at": occurred + timedelta(minutes=15),
                "child_present": "yes",
                "school_urn": "900001",
                "home_postcode": "ZZ99 1AA",
                "summary_for_school": "Officers attended.",
            },
        }
    )


def delivery(to: str = SCHOOL) -> Envelope:
    source = notification()
    return Envelope(
        message_id=uuid.uuid4(),
        kind="delivery",
        sender_org=GATE_ORG,
        correlation_id=source.correlation_id,
        causation_id=source.message_id,
        produced_at=NOW,
        lawful_basis=source.lawful_basis,
        payload=Delivery(
            source_message_id=source.message_id,
            source_kind=source.kind,
            recipient=to,
            purpose="operation_encompass",
            content_level="full",
            released={"subject.given_name": GIVEN, "subject.family_name": FAMILY, "subject.date_of_birth": DOB},
            policy_version="example-area-2026.11-5",
            decision_reasons=("share",),
        ),
    )


def sealed_record(env: Envelope, key: RegisteredEncryptionKey = GATE_ENTRY) -> bytes:
    """What a sender puts on its topic: the content sealed to the gate's key, then the sealed envelope signed."""
    return sign(encrypt_payload(env, key.org, key), POLICE_SIGNER).model_dump_json().encode()


# -- reading a record -----------------------------------------------------------------------------------------


def test_a_sealed_record_is_read_as_sealed_and_a_plaintext_one_as_before() -> None:
    env = notification()
    plain = env.model_dump_json().encode()

    assert isinstance(read_inbound(sealed_record(env)), EncryptedEnvelope)
    assert read_inbound(plain) == read_envelope(plain) == env


def test_a_bad_sealed_record_is_answered_as_intake_answers_naming_the_field() -> None:
    raw = sealed_record(notification())
    doc = json.loads(raw)

    twice = raw.replace(b'"kind":', b'"kind":"contact","kind":', 1)
    bad_enc = json.dumps({**doc, "payload": {**doc["payload"], "enc": "AAAA"}}).encode()
    huge = raw[:-1] + b', "x": "' + b"A" * MAX_MESSAGE_BYTES + b'"}'

    duplicate, contract, large = read_inbound(twice), read_inbound(bad_enc), read_inbound(huge)
    assert isinstance(duplicate, Unreadable)
    assert duplicate.reason == DUPLICATE_KEY
    assert duplicate.problems[0][0] == "kind"
    assert isinstance(contract, Unreadable)
    assert contract.reason == CONTRACT_INVALID
    assert contract.problems[0][0] == "payload.enc"
    assert isinstance(large, Unreadable)
    assert large.reason == TOO_LARGE


# -- opening what was sent to the gate -------------------------------------------------------------------------


def test_a_sender_sealed_record_verifies_over_what_travelled_and_opens_to_what_was_sent() -> None:
    env = notification()
    raw = sealed_record(env)
    read = read_inbound(raw)
    assert isinstance(read, EncryptedEnvelope)

    assert verify(read, REGISTRY, NOW).ok
    assert open_inbound(raw, keys(GATE_KEY)) == env
    assert open_inbound(read, keys(GATE_KEY)) == env


def test_no_childs_detail_is_in_the_sealed_bytes() -> None:
    raw = sealed_record(notification())

    for secret in (GIVEN, FAMILY, DOB, "ZZ99", "Officers attended", "legal_obligation", "900001"):
        assert secret.encode() not in raw


TAMPERED: list[tuple[str, Any]] = [
    ("message_id", str(uuid.uuid4())),
    ("kind", "contact"),
    ("sender_local_id", "EXP/2026/9999"),
    ("correlation_id", str(uuid.uuid4())),
    ("causation_id", str(uuid.uuid4())),
    ("produced_at", (NOW - timedelta(seconds=1)).isoformat()),
    ("recipients", [SCHOOL]),
    ("classification", "OFFICIAL"),
    ("replay", True),
    ("sender_org", "police:otherforce"),
]


@pytest.mark.parametrize(("field", "value"), TAMPERED, ids=[f for f, _ in TAMPERED])
def test_a_changed_readable_field_fails_the_signature_and_refuses_to_open(field: str, value: Any) -> None:
    doc = json.loads(sealed_record(notification()))
    doc[field] = value
    raw = json.dumps(doc).encode()
    read = read_inbound(raw)
    assert isinstance(read, EncryptedEnvelope)

    verdict = verify(read, REGISTRY, NOW)
    opened = open_inbound(raw, keys(GATE_KEY))

    assert verdict.reason in {SignatureReason.BAD_SIGNATURE, SignatureReason.SENDER_MISMATCH}
    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.DOES_NOT_OPEN
    assert opened.record == str(read.message_id)


@pytest.mark.parametrize("part", ["enc", "ct"])
def test_a_changed_ciphertext_fails_the_signature_and_refuses_to_open(part: str) -> None:
    doc = json.loads(sealed_record(notification()))
    text = doc["payload"][part]
    doc["payload"][part] = ("B" if text[7] == "A" else "A").join((text[:7], text[8:]))
    raw = json.dumps(doc).encode()
    read = read_inbound(raw)
    assert isinstance(read, EncryptedEnvelope)

    assert verify(read, REGISTRY, NOW).reason is SignatureReason.BAD_SIGNATURE
    opened = open_inbound(raw, keys(GATE_KEY))
    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.DOES_NOT_OPEN


def test_a_record_sealed_to_another_organisation_is_refused_as_wrongly_addressed() -> None:
    opened = open_inbound(sealed_record(notification(), SCHOOL_ENTRY), keys(GATE_KEY))

    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.WRONG_RECIPIENT
    assert opened.field == "payload.recipient_org"
    assert GIVEN not in str(opened)
    assert DOB not in str(opened)


def test_a_record_sealed_to_a_key_the_gate_does_not_hold_is_refused_naming_the_key() -> None:
    stray = entry(GATE_ORG, STRAY_KEY)
    opened = open_inbound(sealed_record(notification(), stray), keys(GATE_KEY))

    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.UNKNOWN_KEY
    assert stray.key_id in opened.message


def test_a_plaintext_record_given_as_sealed_is_malformed() -> None:
    opened = open_inbound(notification().model_dump_json().encode(), keys(GATE_KEY))
    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.MALFORMED


def test_content_that_opens_but_breaks_the_contract_is_refused_naming_the_field() -> None:
    env = notification()
    routing = env.model_dump(mode="json", include=set(ROUTING_FIELDS) - {"signature"})
    content = env.model_dump(mode="json", include=set(SEALED_FIELDS))
    content["subject"]["date_of_birth"] = "not a date"
    aad = routing_aad(routing, alg=HPKE.alg, recipient_org=GATE_ORG, key_id=GATE_ENTRY.key_id)
    enc, ct = HPKE.seal(GATE_KEY.public_key(), rfc8785.dumps(content), payload_info(env.kind, GATE_ORG), aad)
    sealed = EncryptedEnvelope(
        **env.model_dump(include=set(ROUTING_FIELDS) - {"signature"}),
        payload=EncryptedPayload(recipient_org=GATE_ORG, key_id=GATE_ENTRY.key_id, enc=b64(enc), ct=b64(ct)),
    )

    opened = open_inbound(sealed, keys(GATE_KEY))

    assert isinstance(opened, CiphertextInvalid)
    assert opened.reason is CiphertextReason.CONTENT_INVALID
    assert opened.field == "subject.date_of_birth"
    assert "not a date" not in str(opened)


def test_after_rotation_a_record_sealed_to_the_old_key_still_opens(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    first = new_encryption_key(store, path, GATE_ORG, NOW - timedelta(days=2))
    before = sealed_record(notification(), first)  # in flight across the rotation

    second = new_encryption_key(store, path, GATE_ORG, NOW - timedelta(days=1))
    lookup = keys_in_force(load_registry(path), NOW)
    after_key = lookup(GATE_ORG)
    assert after_key is not None
    assert after_key.key_id == second.key_id != first.key_id
    after = sealed_record(notification(), second)

    held = store.encryption_keys(GATE_ORG)  # current and retired
    assert set(held) == {first.key_id, second.key_id}
    assert isinstance(open_inbound(before, held), Envelope)
    assert isinstance(open_inbound(after, held), Envelope)
    assert isinstance(open_inbound(before, {second.key_id: held[second.key_id]}), CiphertextInvalid)


# -- sealing a delivery to its recipient ------------------------------------------------------------------------


def test_a_delivery_is_sealed_to_its_recipients_key_in_force_and_signed_over_the_ciphertext() -> None:
    env = delivery()

    sealed = seal_delivery(env, SCHOOL, keys_in_force(REGISTRY, NOW), WithoutRecipientKey.REFUSE)

    assert isinstance(sealed, EncryptedEnvelope)
    assert sealed.payload.recipient_org == SCHOOL
    assert sealed.payload.key_id == SCHOOL_ENTRY.key_id
    signed = sign(sealed, GATE_SIGNER)
    wire = signed.model_dump_json()
    assert GIVEN not in wire
    assert DOB not in wire
    assert verify(EncryptedEnvelope.model_validate_json(wire), REGISTRY, NOW).ok
    assert open_inbound(wire.encode(), keys(SCHOOL_KEY), recipient_org=SCHOOL) == env


@pytest.mark.parametrize(
    "registry",
    [
        KeyRegistry(key=SIGNING, encryption_key=(GATE_ENTRY,)),  # none at all
        KeyRegistry(  # one that has expired
            key=SIGNING, encryption_key=(entry(SCHOOL, SCHOOL_KEY, valid_until=NOW - timedelta(hours=1)),)
        ),
        KeyRegistry(  # one that starts later
            key=SIGNING, encryption_key=(entry(SCHOOL, SCHOOL_KEY, valid_from=NOW + timedelta(hours=1)),)
        ),
    ],
    ids=["none", "expired", "not-yet"],
)
def test_without_a_key_in_force_the_agreement_refuses_or_sends_over_tls_alone(registry: KeyRegistry) -> None:
    env = delivery()
    lookup = keys_in_force(registry, NOW)

    refused = seal_delivery(env, SCHOOL, lookup, WithoutRecipientKey.REFUSE)
    tls = seal_delivery(env, SCHOOL, lookup, WithoutRecipientKey.TLS_ONLY)

    assert isinstance(refused, Refused)
    assert refused.reason == NO_RECIPIENT_KEY
    assert SCHOOL in refused.detail
    assert GIVEN not in refused.detail
    assert isinstance(tls, TlsOnly)
    assert tls.envelope == env
    assert tls.reason == NO_RECIPIENT_KEY
    assert "TLS" in tls.detail


def test_a_key_of_another_organisation_is_refused_whatever_the_rule() -> None:
    for rule in WithoutRecipientKey:
        refused = seal_delivery(
            delivery(), SCHOOL, lambda _org: SCHOOL_ENTRY.model_copy(update={"org": OTHER_SCHOOL}), rule
        )
        assert isinstance(refused, Refused)
        assert refused.reason == KEY_UNUSABLE


def test_a_replay_is_sealed_to_the_key_in_force_when_it_is_sent_again() -> None:
    new_school_key = X25519PrivateKey.generate()
    rotated_at = NOW + timedelta(days=1)
    old = entry(SCHOOL, SCHOOL_KEY).model_copy(update={"valid_until": rotated_at})
    registry = KeyRegistry(key=SIGNING, encryption_key=(old, entry(SCHOOL, new_school_key, valid_from=rotated_at)))

    first = seal_delivery(delivery(), SCHOOL, keys_in_force(registry, NOW), WithoutRecipientKey.REFUSE)
    replayed = seal_delivery(
        delivery(), SCHOOL, keys_in_force(registry, rotated_at + timedelta(hours=2)), WithoutRecipientKey.REFUSE
    )

    assert isinstance(first, EncryptedEnvelope)
    assert isinstance(replayed, EncryptedEnvelope)
    assert first.payload.key_id == old.key_id
    assert replayed.payload.key_id == encryption_key_id(new_school_key.public_key())


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
