"""Envelopes sealed to their recipient: what stays readable, what refuses to open, and the contract itself."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from mash_broker.contracts import ContractError, EncryptedEnvelope, EncryptedPayload, Envelope
from mash_broker.contracts.encrypted import HPKE_ALG, ROUTING_FIELDS, SEALED_FIELDS
from mash_broker.core.crypto import (
    HPKE,
    CiphertextInvalid,
    CiphertextReason,
    EncryptionRefused,
    decrypt_payload,
    encrypt_payload,
    encryption_key_id,
    payload_info,
    public_key_b64,
    routing_aad,
)
from mash_broker.core.signing.registry import RegisteredEncryptionKey

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
POLICE, SCHOOL, OTHER_SCHOOL = "police:examplepolice", "school:900001", "school:900002"


def x25519(seed: int) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def registered(org: str, key: X25519PrivateKey) -> RegisteredEncryptionKey:
    public = key.public_key()
    return RegisteredEncryptionKey(
        org=org, key_id=encryption_key_id(public), public_key=public_key_b64(public), valid_from=NOW - timedelta(days=1)
    )


SCHOOL_KEY, SCHOOL_OLD_KEY, OTHER_KEY = x25519(1), x25519(2), x25519(3)
SCHOOL_ENTRY = registered(SCHOOL, SCHOOL_KEY)
SCHOOL_KEYS = {encryption_key_id(k.public_key()): k for k in (SCHOOL_KEY, SCHOOL_OLD_KEY)}
OTHER_KEYS = {encryption_key_id(OTHER_KEY.public_key()): OTHER_KEY}


def notification(**changes: Any) -> Envelope:
    occurred = NOW - timedelta(hours=9)
    doc: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "kind": "notification.encompass",
        "sender_org": POLICE,
        "sender_local_id": "EXP/2026/1001",
        "correlation_id": uuid.uuid4(),
        "produced_at": NOW,
        "recipients": [SCHOOL],
        "subject": {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"},
        "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
        "significant_harm_risk": True,
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
    doc.update(changes)
    return Envelope.model_validate(doc)


def over_the_wire(sealed: EncryptedEnvelope) -> EncryptedEnvelope:
    return EncryptedEnvelope.model_validate_json(sealed.model_dump_json())


# -- what travels -------------------------------------------------------------------------------------------


def test_every_envelope_field_is_either_routing_or_sealed() -> None:
    assert set(ROUTING_FIELDS).isdisjoint(SEALED_FIELDS)
    assert set(ROUTING_FIELDS) | set(SEALED_FIELDS) == set(Envelope.model_fields)
    assert set(EncryptedEnvelope.model_fields) == {*ROUTING_FIELDS, "payload"}


def test_a_sealed_envelope_opens_to_the_same_envelope_for_its_recipient() -> None:
    env = notification()

    sealed = over_the_wire(encrypt_payload(env, SCHOOL, SCHOOL_ENTRY))

    assert decrypt_payload(sealed, SCHOOL_KEYS, recipient_org=SCHOOL) == env


def test_routing_stays_readable_and_nothing_about_the_child_does() -> None:
    env = notification()

    sealed = encrypt_payload(env, SCHOOL, SCHOOL_ENTRY)
    text = sealed.model_dump_json()

    for name in ROUTING_FIELDS:
        assert getattr(sealed, name) == getattr(env, name)
    assert (sealed.payload.alg, sealed.payload.recipient_org, sealed.payload.key_id) == (
        HPKE_ALG,
        SCHOOL,
        SCHOOL_ENTRY.key_id,
    )
    for secret in (
        "Zebedee",
        "Quillfeather",
        "2016-05-12",
        "ZZ99",
        "Officers attended",
        "legal_obligation",
        "significant_harm_risk",
        "school_urn",
    ):
        assert secret not in text


def test_a_signature_on_the_plaintext_is_not_carried() -> None:
    sealed = encrypt_payload(notification(signature="ed25519:0123456789abcdef:AAAA"), SCHOOL, SCHOOL_ENTRY)
    assert sealed.signature is None
    signed_later = sealed.model_copy(update={"signature": "ed25519:0123456789abcdef:BBBB"})
    assert decrypt_payload(signed_later, SCHOOL_KEYS).signature is None  # the signature is not in the aad


def test_info_binds_the_kind_and_the_recipient_and_aad_the_routing() -> None:
    env = notification()
    sealed = encrypt_payload(env, SCHOOL, SCHOOL_ENTRY)
    routing = sealed.model_dump(mode="json", include=set(ROUTING_FIELDS) - {"signature"})
    aad = routing_aad(routing, alg=HPKE_ALG, recipient_org=SCHOOL, key_id=SCHOOL_ENTRY.key_id)
    ct = base64.urlsafe_b64decode(sealed.payload.ct + "==")
    enc = base64.urlsafe_b64decode(sealed.payload.enc + "=")

    opened = HPKE.open(SCHOOL_KEY, enc, ct, payload_info(env.kind, SCHOOL), aad)

    assert opened == rfc8785.dumps(env.model_dump(mode="json", include=set(SEALED_FIELDS)))
    assert b"notification.encompass" in payload_info(env.kind, SCHOOL)
    assert SCHOOL.encode() in payload_info(env.kind, SCHOOL)


# -- what refuses to open -------------------------------------------------------------------------------------

TAMPERED_ROUTING: list[tuple[str, Any]] = [
    ("message_id", uuid.uuid4()),
    ("kind", "contact"),
    ("sender_org", "police:otherforce"),
    ("sender_local_id", "EXP/2026/9999"),
    ("correlation_id", uuid.uuid4()),
    ("causation_id", uuid.uuid4()),
    ("produced_at", NOW + timedelta(seconds=1)),
    ("recipients", (OTHER_SCHOOL,)),
    ("classification", "OFFICIAL"),
    ("replay", True),
]


@pytest.mark.parametrize(("field", "value"), TAMPERED_ROUTING, ids=[f for f, _ in TAMPERED_ROUTING])
def test_tampered_routing_metadata_refuses_to_open(field: str, value: Any) -> None:
    sealed = over_the_wire(encrypt_payload(notification(), SCHOOL, SCHOOL_ENTRY))
    doc = sealed.model_dump(mode="json")
    doc[field] = value if not isinstance(value, (uuid.UUID, datetime)) else str(value)
    tampered = EncryptedEnvelope.model_validate(doc)

    with pytest.raises(CiphertextInvalid) as caught:
        decrypt_payload(tampered, SCHOOL_KEYS, recipient_org=SCHOOL)

    assert caught.value.reason is CiphertextReason.DOES_NOT_OPEN
    assert caught.value.code == "ciphertext_invalid"
    assert caught.value.record == str(tampered.message_id)


@pytest.mark.parametrize("part", ["enc", "ct"])
def test_a_changed_ciphertext_refuses_to_open(part: str) -> None:
    sealed = encrypt_payload(notification(), SCHOOL, SCHOOL_ENTRY)
    text = getattr(sealed.payload, part)
    changed = ("B" if text[5] == "A" else "A").join((text[:5], text[6:]))
    tampered = sealed.model_copy(update={"payload": sealed.payload.model_copy(update={part: changed})})

    with pytest.raises(CiphertextInvalid):
        decrypt_payload(tampered, SCHOOL_KEYS)


def test_re_addressing_the_key_header_refuses_to_open() -> None:
    sealed = encrypt_payload(notification(), SCHOOL, SCHOOL_ENTRY)
    old_id = encryption_key_id(SCHOOL_OLD_KEY.public_key())
    for change in ({"recipient_org": OTHER_SCHOOL}, {"key_id": old_id}):
        tampered = sealed.model_copy(update={"payload": sealed.payload.model_copy(update=change)})
        with pytest.raises(CiphertextInvalid) as caught:
            decrypt_payload(tampered, SCHOOL_KEYS)
        assert caught.value.reason is CiphertextReason.DOES_NOT_OPEN


def test_the_wrong_recipient_is_refused() -> None:
    sealed = encrypt_payload(notification(), SCHOOL, SCHOOL_ENTRY)

    with pytest.raises(CiphertextInvalid) as addressed:
        decrypt_payload(sealed, OTHER_KEYS, recipient_org=OTHER_SCHOOL)
    with pytest.raises(CiphertextInvalid) as unknown:
        decrypt_payload(sealed, OTHER_KEYS)
    with pytest.raises(CiphertextInvalid) as wrong_key:
        decrypt_payload(sealed, {SCHOOL_ENTRY.key_id: OTHER_KEY})

    assert addressed.value.reason is CiphertextReason.WRONG_RECIPIENT
    assert addressed.value.field == "payload.recipient_org"
    assert unknown.value.reason is CiphertextReason.UNKNOWN_KEY
    assert wrong_key.value.reason is CiphertextReason.DOES_NOT_OPEN


def test_a_key_of_another_organisation_is_refused_when_sealing() -> None:
    with pytest.raises(EncryptionRefused, match="belongs to school:900001"):
        encrypt_payload(notification(), OTHER_SCHOOL, SCHOOL_ENTRY)


def test_an_old_key_still_opens_what_was_sealed_to_it() -> None:
    sealed = encrypt_payload(notification(), SCHOOL, registered(SCHOOL, SCHOOL_OLD_KEY))
    assert decrypt_payload(sealed, SCHOOL_KEYS).subject == notification().subject


def test_sealed_content_cannot_override_the_routing() -> None:
    # A sender sealing {"recipients": [...]} inside could otherwise re-route what the gate reads.
    env = notification()
    routing = env.model_dump(mode="json", include=set(ROUTING_FIELDS) - {"signature"})
    content = {**env.model_dump(mode="json", include=set(SEALED_FIELDS)), "recipients": [OTHER_SCHOOL]}
    aad = routing_aad(routing, alg=HPKE_ALG, recipient_org=SCHOOL, key_id=SCHOOL_ENTRY.key_id)
    enc, ct = HPKE.seal(SCHOOL_KEY.public_key(), rfc8785.dumps(content), payload_info(env.kind, SCHOOL), aad)
    sealed = EncryptedEnvelope(
        **env.model_dump(include=set(ROUTING_FIELDS) - {"signature"}),
        payload=EncryptedPayload(recipient_org=SCHOOL, key_id=SCHOOL_ENTRY.key_id, enc=b64(enc), ct=b64(ct)),
    )

    with pytest.raises(ContractError, match="sealed fields only"):
        decrypt_payload(sealed, SCHOOL_KEYS)


# -- the contract -------------------------------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GOOD_PAYLOAD = {"recipient_org": SCHOOL, "key_id": "0123456789abcdef", "enc": b64(bytes(32)), "ct": b64(bytes(16))}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alg", "HPKE-base-P256-SHA256-AES128GCM"),
        ("recipient_org", "School 900001"),
        ("key_id", "XYZ"),
        ("enc", b64(bytes(31))),
        ("enc", b64(bytes(32)) + "="),
        ("enc", b64(bytes(32))[:-1] + "B"),  # non-canonical: trailing bits set
        ("ct", "not base64url!"),
        ("ct", b64(bytes(15))),
        ("colour", "red"),
    ],
)
def test_an_invalid_encrypted_payload_is_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EncryptedPayload.model_validate({**GOOD_PAYLOAD, field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_the_encrypted_payload_is_frozen() -> None:
    payload = EncryptedPayload.model_validate(GOOD_PAYLOAD)
    assert payload.alg == HPKE_ALG
    with pytest.raises(ValidationError, match="frozen"):
        payload.key_id = "fedcba9876543210"  # type: ignore[misc]
