"""Signed envelopes, pure: canonical bytes, sign and verify for every reason code, rotation, delegation."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mash_broker.contracts import Classification, Envelope, ReceiptStatus, SystemReceipt
from mash_broker.core.audit.keys import Ed25519Signer, public_key_b64
from mash_broker.core.messages import GATE_ORG, reply
from mash_broker.core.signing import (
    FUTURE_TOLERANCE,
    ON_BEHALF,
    KeyRegistry,
    RegisteredKey,
    SignatureReason,
    canonical_bytes,
    sign,
    verify,
)

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
POLICE = "police:examplepolice"
SCHOOL = "school:900001"
FROM = datetime(2026, 1, 1, tzinfo=UTC)


def new_signer() -> Ed25519Signer:
    return Ed25519Signer(Ed25519PrivateKey.generate())


def entry(
    org: str, key: Ed25519Signer, valid_from: datetime = FROM, valid_until: datetime | None = None
) -> RegisteredKey:
    return RegisteredKey(
        org=org,
        key_id=key.key_id,
        public_key=public_key_b64(key.public_key),
        valid_from=valid_from,
        valid_until=valid_until,
    )


POLICE_KEY, SCHOOL_KEY, GATE_KEY, STRANGER_KEY = (new_signer() for _ in range(4))
REGISTRY = KeyRegistry(key=(entry(POLICE, POLICE_KEY), entry(SCHOOL, SCHOOL_KEY), entry(GATE_ORG, GATE_KEY)))


def notification(
    *,
    produced_at: datetime = NOW,
    summary: str = "Officers attended; the child was unhurt.",
    sender: str = POLICE,
    **changes: Any,
) -> Envelope:
    occurred = NOW - timedelta(hours=9)
    doc: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "kind": "notification.encompass",
        "sender_org": sender,
        "sender_local_id": "EXP/2026/1001",
        "correlation_id": uuid.uuid4(),
        "produced_at": produced_at,
        "subject": {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"},
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
            "summary_for_school": summary,
        },
    }
    doc.update(changes)
    return Envelope.model_validate(doc)


def over_the_wire(env: Envelope) -> Envelope:
    return Envelope.model_validate_json(env.model_dump_json())


# -- canonical bytes and the signature format ------------------------------------------------------


def test_canonical_bytes_are_rfc8785_of_the_json_less_the_signature() -> None:
    env = notification()
    signed = sign(env, POLICE_KEY)

    doc = json.loads(env.model_dump_json())
    del doc["signature"]
    assert canonical_bytes(env) == rfc8785.dumps(doc) == canonical_bytes(signed)
    assert b"signature" not in canonical_bytes(signed)
    assert canonical_bytes(over_the_wire(signed)) == canonical_bytes(env)


def test_a_signature_names_the_algorithm_and_the_key() -> None:
    signed = sign(notification(), POLICE_KEY)

    assert signed.signature is not None
    algorithm, key_id, raw = signed.signature.split(":")
    assert (algorithm, key_id) == ("ed25519", POLICE_KEY.key_id)
    assert len(base64.b64decode(raw, validate=True)) == 64
    assert signed.model_copy(update={"signature": None}) == notification().model_copy(
        update={"message_id": signed.message_id, "correlation_id": signed.correlation_id}
    )


def test_signing_again_replaces_the_signature() -> None:
    once = sign(notification(), STRANGER_KEY)
    again = sign(once, POLICE_KEY)
    assert verify(again, REGISTRY, NOW).ok


# -- ok -----------------------------------------------------------------------------------------------


def test_a_message_signed_by_its_sender_verifies_after_crossing_the_wire() -> None:
    verdict = verify(over_the_wire(sign(notification(), POLICE_KEY)), REGISTRY, NOW)

    assert verdict.ok, verdict
    assert (verdict.reason, verdict.key_id) == (None, POLICE_KEY.key_id)


@settings(max_examples=60, deadline=None)
@given(
    summary=st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=300),
    minutes=st.integers(min_value=-600, max_value=4),
)
def test_any_valid_message_verifies_after_crossing_the_wire(summary: str, minutes: int) -> None:
    env = notification(summary=summary, produced_at=NOW + timedelta(minutes=minutes, microseconds=minutes))
    assert verify(over_the_wire(sign(env, POLICE_KEY)), REGISTRY, NOW).ok


# -- each reason code ------------------------------------------------------------------------------


def test_an_unsigned_message_is_unsigned() -> None:
    verdict = verify(notification(), REGISTRY, NOW)
    assert (verdict.ok, verdict.reason) == (False, SignatureReason.UNSIGNED)


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "garbage",
        "rsa:0123456789abcdef:AAAA",
        "ed25519:0123456789ABCDEF:" + base64.b64encode(b"x" * 64).decode(),  # key id not lower-case hex
        "ed25519:0123456789abcde:" + base64.b64encode(b"x" * 64).decode(),  # key id 15 digits
        "ed25519:0123456789abcdef:" + base64.b64encode(b"x" * 63).decode(),  # 63 bytes
        "ed25519:0123456789abcdef:" + base64.b64encode(b"x" * 65).decode(),  # 65 bytes
        "ed25519:0123456789abcdef:!!not-base64!!",
        "ed25519:0123456789abcdef:" + base64.b64encode(b"x" * 64).decode() + ":extra",
    ],
)
def test_a_signature_not_in_the_format_is_malformed(signature: str) -> None:
    env = notification().model_copy(update={"signature": signature})
    assert verify(env, REGISTRY, NOW).reason is SignatureReason.MALFORMED_SIGNATURE


def test_a_key_not_in_the_registry_is_unknown() -> None:
    verdict = verify(sign(notification(), STRANGER_KEY), REGISTRY, NOW)
    assert (verdict.reason, verdict.key_id) == (SignatureReason.UNKNOWN_KEY, STRANGER_KEY.key_id)
    assert STRANGER_KEY.key_id in verdict.detail


def test_another_organisations_key_is_a_sender_mismatch() -> None:
    verdict = verify(sign(notification(), SCHOOL_KEY), REGISTRY, NOW)
    assert verdict.reason is SignatureReason.SENDER_MISMATCH
    assert SCHOOL in verdict.detail
    assert POLICE in verdict.detail


def test_the_right_key_for_another_sender_name_is_a_sender_mismatch() -> None:
    """A police force cannot sign in a school's name with its own (valid) key."""
    verdict = verify(sign(notification(sender=SCHOOL), POLICE_KEY), REGISTRY, NOW)
    assert verdict.reason is SignatureReason.SENDER_MISMATCH


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "produced_at"),
    [
        pytest.param(NOW, None, NOW - timedelta(seconds=1), id="before-valid-from"),
        pytest.param(FROM, NOW - timedelta(hours=1), NOW - timedelta(minutes=59), id="after-valid-until"),
        pytest.param(FROM, NOW - timedelta(hours=1), NOW - timedelta(hours=1), id="at-valid-until"),
        pytest.param(FROM, None, NOW + FUTURE_TOLERANCE + timedelta(seconds=1), id="too-far-in-the-future"),
    ],
)
def test_a_key_outside_its_validity_at_produced_at_is_not_valid(
    valid_from: datetime, valid_until: datetime | None, produced_at: datetime
) -> None:
    registry = KeyRegistry(key=(entry(POLICE, POLICE_KEY, valid_from, valid_until),))
    verdict = verify(sign(notification(produced_at=produced_at), POLICE_KEY), registry, NOW)
    assert verdict.reason is SignatureReason.KEY_NOT_VALID


def test_validity_bounds_are_inclusive_from_and_exclusive_until() -> None:
    registry = KeyRegistry(key=(entry(POLICE, POLICE_KEY, NOW - timedelta(hours=1), NOW + timedelta(hours=1)),))
    assert verify(sign(notification(produced_at=NOW - timedelta(hours=1)), POLICE_KEY), registry, NOW).ok
    assert verify(sign(notification(produced_at=NOW + FUTURE_TOLERANCE), POLICE_KEY), registry, NOW).ok


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"sender_local_id": "EXP/2026/9999"}, id="sender_local_id"),
        pytest.param({"produced_at": NOW - timedelta(seconds=1)}, id="produced_at"),
        pytest.param({"replay": True}, id="replay"),
        pytest.param({"message_id": uuid.uuid4()}, id="message_id"),
        pytest.param({"classification": Classification.OFFICIAL}, id="classification"),
    ],
)
def test_a_message_changed_after_signing_has_a_bad_signature(change: dict[str, Any]) -> None:
    tampered = over_the_wire(sign(notification(), POLICE_KEY)).model_copy(update=change)
    verdict = verify(tampered, REGISTRY, NOW)
    assert verdict.reason is SignatureReason.BAD_SIGNATURE


def test_a_changed_payload_has_a_bad_signature() -> None:
    signed = sign(notification(), POLICE_KEY)
    doc = json.loads(signed.model_dump_json())
    doc["payload"]["school_urn"] = "900002"
    verdict = verify(Envelope.model_validate(doc), REGISTRY, NOW)
    assert verdict.reason is SignatureReason.BAD_SIGNATURE


def test_a_signature_copied_from_another_message_is_bad() -> None:
    other = sign(notification(), POLICE_KEY)
    forged = notification().model_copy(update={"signature": other.signature})
    assert verify(forged, REGISTRY, NOW).reason is SignatureReason.BAD_SIGNATURE


def test_the_senders_key_id_with_another_keys_signature_is_bad() -> None:
    """A forger who names the police key but signs with its own: right name, wrong key."""
    own = sign(notification(), STRANGER_KEY)
    assert own.signature is not None
    forged = own.model_copy(update={"signature": own.signature.replace(STRANGER_KEY.key_id, POLICE_KEY.key_id)})
    assert verify(forged, REGISTRY, NOW).reason is SignatureReason.BAD_SIGNATURE


def test_details_carry_no_personal_data() -> None:
    cases = [
        notification(),
        sign(notification(), STRANGER_KEY),
        sign(notification(), SCHOOL_KEY),
        sign(notification(), POLICE_KEY).model_copy(update={"sender_local_id": "X"}),
    ]
    for env in cases:
        detail = verify(env, REGISTRY, NOW).detail
        assert not any(p in detail for p in ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99"))


# -- rotation ------------------------------------------------------------------------------------------


def test_rotation_keeps_in_flight_messages_verifiable() -> None:
    old, new = new_signer(), new_signer()
    rotated_at = NOW - timedelta(hours=1)
    before = KeyRegistry(key=(entry(POLICE, old),))
    in_flight = over_the_wire(sign(notification(produced_at=rotated_at - timedelta(minutes=5)), old))
    assert verify(in_flight, before, NOW).ok

    # A new key is added with overlapping validity; the old one is retired a day later.
    after = before.with_key(entry(POLICE, old, FROM, NOW + timedelta(days=1))).with_key(entry(POLICE, new, rotated_at))

    assert len(after.for_org(POLICE)) == 2
    assert verify(in_flight, after, NOW).ok, "signed with the old key before rotation: still verifies"
    assert verify(sign(notification(), new), after, NOW).ok
    assert verify(sign(notification(), old), after, NOW).ok, "both keys are valid in the overlap"
    late = sign(notification(produced_at=NOW + timedelta(days=1)), old)
    assert verify(late, after, NOW + timedelta(days=1)).reason is SignatureReason.KEY_NOT_VALID
    assert verify(sign(notification(produced_at=NOW + timedelta(days=1)), new), after, NOW + timedelta(days=1)).ok


def test_a_message_is_judged_by_the_key_its_signature_names() -> None:
    old, new = new_signer(), new_signer()
    registry = KeyRegistry(
        key=(entry(POLICE, old, FROM, NOW - timedelta(hours=2)), entry(POLICE, new, NOW - timedelta(hours=3)))
    )
    env = notification(produced_at=NOW - timedelta(hours=1))
    assert verify(sign(env, old), registry, NOW).reason is SignatureReason.KEY_NOT_VALID
    assert verify(sign(env, new), registry, NOW).ok


# -- the gate signing on a school's behalf ---------------------------------------------------------------


def school_ack() -> Envelope:
    receipt = SystemReceipt(receipted_message_id=uuid.uuid4(), status=ReceiptStatus.DELIVERED, received_at=NOW)
    return reply(notification(), receipt, sender_org=SCHOOL, now=NOW)


def test_a_school_ack_signed_by_the_school_verifies_strictly() -> None:
    assert verify(sign(school_ack(), SCHOOL_KEY), REGISTRY, NOW).ok


def test_a_school_ack_signed_by_the_gate_verifies_only_with_the_delegation() -> None:
    signed = sign(school_ack(), GATE_KEY)
    assert verify(signed, REGISTRY, NOW).reason is SignatureReason.SENDER_MISMATCH
    assert verify(signed, REGISTRY, NOW, delegates=ON_BEHALF).ok
    police_in_gate_name = sign(notification(), GATE_KEY)
    assert verify(police_in_gate_name, REGISTRY, NOW, delegates=ON_BEHALF).reason is SignatureReason.SENDER_MISMATCH, (
        "the gate signs for schools only"
    )
