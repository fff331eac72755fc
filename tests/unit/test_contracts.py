"""Contracts v1: immutable, closed models; the envelope's own rules; bounded, clean free text."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mash_broker.contracts import (
    ChildSubject,
    EncompassNotification,
    Envelope,
    Identifier,
    LawfulBasis,
    deterministic_id,
)
from mash_broker.contracts.envelope import KINDS_WITH_SUBJECT, MESSAGE_ID_NAMESPACE
from mash_broker.contracts.schemas import CONTRACTS

UTC = UTC
BST = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
MID = uuid.UUID("00000000-0000-4000-8000-000000000001")
CID = uuid.UUID("00000000-0000-4000-8000-000000000002")

SUBJECT: dict[str, Any] = {
    "given_name": "Zebedee",
    "family_name": "Quillfeather",
    "date_of_birth": "2016-05-12",
    "identifiers": [{"scheme": "police_person", "value": "P-1"}],
}
BASIS: dict[str, Any] = {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"}

# One valid payload of every kind the envelope carries.
PAYLOADS: dict[str, dict[str, Any]] = {
    "notification.encompass": {
        "kind": "notification.encompass",
        "police_reference": "EXP/2026/1001",
        "force": "example",
        "occurred_at": "2026-11-16T21:40:00+00:00",
        "reported_at": "2026-11-16T21:55:00+00:00",
        "child_present": "yes",
        "school_urn": "900001",
        "home_postcode": "ZZ99 1AA",
        "summary_for_school": "Officers attended.\nThe child was present and unhurt.",
    },
    "contact": {
        "kind": "contact",
        "referrer_name": "A Teacher",
        "referrer_role": "Designated safeguarding lead",
        "what_happened": "Disclosure in class.",
        "worried_about": "Neglect.",
        "consent_sought": True,
        "consent_given": False,
    },
    "outcome": {
        "kind": "outcome",
        "contact_message_id": str(MID),
        "decision": "early_help",
        "rationale": "Family agreed to early help.",
        "decided_at": "2026-11-17T09:00:00+01:00",
    },
    "consent": {
        "kind": "consent",
        "consent_id": str(uuid.UUID(int=7)),
        "status": "given",
        "given_by": "parent",
        "recipients": ["school:900001"],
        "purposes": ["early_help"],
        "valid_from": "2026-11-01T00:00:00+00:00",
        "valid_until": "2027-11-01T00:00:00+00:00",
        "recorded_by": "MASH officer",
        "recorded_at": "2026-11-01T10:00:00+00:00",
    },
    "consent.dispensation": {
        "kind": "consent.dispensation",
        "dispensation_id": str(uuid.UUID(int=8)),
        "reason": "would_put_child_at_risk",
        "decided_by": "MASH team manager",
        "decided_at": "2026-11-01T10:00:00+00:00",
        "rationale": "Asking the carer would alert the person suspected of harm.",
        "recipients": ["gp:*"],
        "purposes": ["safeguarding_health"],
        "do_not_notify_subject": True,
    },
    "ack.system_receipt": {
        "kind": "ack.system_receipt",
        "receipted_message_id": str(MID),
        "status": "accepted",
        "reason_code": "statutory_duty",
        "received_at": "2026-11-17T07:00:00+00:00",
    },
    "ack.person_read": {
        "kind": "ack.person_read",
        "read_message_id": str(MID),
        "reader_name": "Key Adult",
        "reader_org": "school:900001",
        "read_at": "2026-11-17T08:10:00+00:00",
    },
    "delivery": {
        "kind": "delivery",
        "source_message_id": str(MID),
        "source_kind": "notification.encompass",
        "recipient": "school:900001",
        "purpose": "operation_encompass",
        "content_level": "full",
        "released": {"subject.given_name": "Zebedee", "nested": {"list": [1, 2.5, None, True]}},
        "notify_by": "2026-11-17T10:00:00+00:00",
        "policy_version": "builtin-2026.11-1",
        "decision_reasons": ["statutory_duty", "minimum_fields_released"],
    },
    "care.looked_after_change": {
        "kind": "care.looked_after_change",
        "change": "became_looked_after",
        "effective_on": "2026-11-16",
        "legal_status": "s20_accommodated",
    },
    "health.assessment_request": {
        "kind": "health.assessment_request",
        "looked_after_since": "2026-11-16",
        "consent_form": {"document_id": "la-999/forms/0001", "sha256": "0" * 64},
        "requested_by": "Synthetic Social Worker",
    },
    "s47.info_request": {
        "kind": "s47.info_request",
        "questions": "Is the child registered? Any concerns recorded?",
        "answer_by": "2026-11-20T17:00:00+00:00",
        "requested_by": "Synthetic Social Worker",
    },
    "health.assessment_completed": {
        "kind": "health.assessment_completed",
        "request_message_id": str(MID),
        "completed_on": "2026-12-01",
    },
    "s47.gp_report": {
        "kind": "s47.gp_report",
        "request_message_id": str(MID),
        "known_to_practice": True,
        "report": "Synthetic report.",
        "author": "Dr Example",
    },
    "quarantined": {
        "kind": "quarantined",
        "source_message_id": None,
        "sender_org": None,
        "reason_code": "contract_invalid",
        "detail": "(message): Invalid JSON",
    },
}


def envelope_doc(kind: str = "notification.encompass", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "message_id": str(MID),
        "kind": kind,
        "sender_org": "police:example",
        "correlation_id": str(CID),
        "produced_at": NOW.isoformat(),
        "lawful_basis": BASIS,
        "payload": PAYLOADS.get(kind),
    }
    if kind in KINDS_WITH_SUBJECT:
        doc["subject"] = SUBJECT
    doc.update(overrides)
    return doc


def encompass(**payload: Any) -> dict[str, Any]:
    return envelope_doc(payload=PAYLOADS["notification.encompass"] | payload)


def error_types(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {e["type"] for e in exc.value.errors()}


# -- closed and immutable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [*CONTRACTS.values(), ChildSubject, Identifier, LawfulBasis], ids=lambda m: m.__name__
)
def test_every_contract_is_frozen_and_closed(model: type[BaseModel]) -> None:
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize(
    "doc",
    [
        envelope_doc(unexpected="x"),
        encompass(unexpected="x"),
        envelope_doc(subject=SUBJECT | {"nhs_number": "9434765919"}),
        envelope_doc(lawful_basis=BASIS | {"because": "I said so"}),
    ],
    ids=["envelope", "payload", "subject", "lawful_basis"],
)
def test_unknown_field_is_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        Envelope.model_validate(doc)
    assert error_types(exc) == {"extra_forbidden"}


def test_mutation_is_rejected() -> None:
    env = Envelope.model_validate(envelope_doc())
    with pytest.raises(ValidationError) as exc:
        env.sender_org = "police:other"  # type: ignore[misc]
    assert error_types(exc) == {"frozen_instance"}
    assert isinstance(env.payload, EncompassNotification)
    with pytest.raises(ValidationError):
        env.payload.school_urn = "900002"  # type: ignore[misc]
    assert env.subject is not None
    with pytest.raises(ValidationError):
        env.subject.given_name = "Other"  # type: ignore[misc]


# -- the envelope's rules ----------------------------------------------------------------------


def test_kind_must_match_payload_kind() -> None:
    with pytest.raises(ValidationError, match="does not match payload kind"):
        Envelope.model_validate(envelope_doc(kind="contact", payload=PAYLOADS["notification.encompass"]))


@pytest.mark.parametrize("kind", sorted(KINDS_WITH_SUBJECT))
def test_subject_required_for_kinds_about_a_child(kind: str) -> None:
    assert kind in PAYLOADS
    with pytest.raises(ValidationError, match="needs a subject"):
        Envelope.model_validate(envelope_doc(kind, subject=None))


@pytest.mark.parametrize("kind", sorted(set(PAYLOADS) - KINDS_WITH_SUBJECT))
def test_subject_optional_for_acks_deliveries_and_notices(kind: str) -> None:
    assert Envelope.model_validate(envelope_doc(kind)).subject is None


def test_unknown_payload_kind_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Envelope.model_validate(envelope_doc(kind="gossip", payload={"kind": "gossip"}))
    assert "union_tag_invalid" in error_types(exc)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_json_round_trip_is_lossless(kind: str) -> None:
    env = Envelope.model_validate(envelope_doc(kind))
    text = env.model_dump_json()
    again = Envelope.model_validate_json(text)
    assert again == env
    assert again.model_dump_json() == text
    assert type(again.payload) is type(env.payload)


def test_round_trip_keeps_the_offset_of_local_times() -> None:
    env = Envelope.model_validate(envelope_doc(produced_at=datetime(2026, 6, 1, 9, 0, tzinfo=BST)))
    again = Envelope.model_validate_json(env.model_dump_json())
    assert again.produced_at.utcoffset() == timedelta(hours=1)


def test_subject_date_of_birth_is_a_date() -> None:
    env = Envelope.model_validate(envelope_doc())
    assert env.subject is not None
    assert env.subject.date_of_birth == date(2016, 5, 12)


# -- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        envelope_doc(produced_at="2026-11-17T07:00:00"),
        encompass(occurred_at="2026-11-16T21:40:00"),
        encompass(reported_at="2026-11-16T21:55:00"),
    ],
    ids=["produced_at", "occurred_at", "reported_at"],
)
def test_naive_datetimes_are_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        Envelope.model_validate(doc)
    assert error_types(exc) == {"timezone_aware"}


def test_reported_before_occurred_is_rejected() -> None:
    with pytest.raises(ValidationError, match="reported_at is before occurred_at"):
        Envelope.model_validate(encompass(reported_at="2026-11-16T21:39:59+00:00"))


def test_reported_at_the_moment_it_occurred_is_accepted() -> None:
    Envelope.model_validate(encompass(reported_at="2026-11-16T21:40:00+00:00"))


def test_reported_after_occurred_across_offsets_compares_instants() -> None:
    # 22:30+01:00 is 21:30Z: before 21:40Z, however it reads.
    with pytest.raises(ValidationError, match="reported_at is before occurred_at"):
        Envelope.model_validate(encompass(reported_at="2026-11-16T22:30:00+01:00"))


# -- free text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\r", "\x7f", "\x85", "\x9b"])
def test_control_characters_are_rejected_in_free_text(char: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        Envelope.model_validate(encompass(summary_for_school=f"before{char}after"))
    with pytest.raises(ValidationError, match="control characters"):
        Envelope.model_validate(envelope_doc(subject=SUBJECT | {"given_name": f"Ze{char}bedee"}))


def test_newline_and_tab_are_allowed_in_free_text() -> None:
    env = Envelope.model_validate(encompass(summary_for_school="line one\n\tline two"))
    assert isinstance(env.payload, EncompassNotification)
    assert env.payload.summary_for_school == "line one\n\tline two"


def test_free_text_is_nfc_normalised() -> None:
    env = Envelope.model_validate(encompass(summary_for_school="Zoe\u0308"))
    assert isinstance(env.payload, EncompassNotification)
    assert env.payload.summary_for_school == "Zo\u00eb"


def test_summary_is_bounded_at_2000_characters() -> None:
    Envelope.model_validate(encompass(summary_for_school="x" * 2000))
    with pytest.raises(ValidationError) as exc:
        Envelope.model_validate(encompass(summary_for_school="x" * 2001))
    assert error_types(exc) == {"string_too_long"}


def test_blank_name_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Envelope.model_validate(envelope_doc(subject=SUBJECT | {"family_name": "   "}))
    assert error_types(exc) == {"string_too_short"}


@pytest.mark.parametrize("urn", ["90001", "9000011", "90000A", " 900001\n"])
def test_school_urn_is_six_digits(urn: str) -> None:
    if urn.strip() == "900001":  # surrounding whitespace is stripped by every contract
        Envelope.model_validate(encompass(school_urn=urn))
        return
    with pytest.raises(ValidationError):
        Envelope.model_validate(encompass(school_urn=urn))


def test_validation_errors_do_not_echo_personal_data_in_messages() -> None:
    with pytest.raises(ValidationError) as exc:
        Envelope.model_validate(encompass(summary_for_school="Zebedee lives at ZZ99 1AA\x00"))
    assert all("Zebedee" not in e["msg"] for e in exc.value.errors())


# -- identity ----------------------------------------------------------------------------------


def test_deterministic_id_is_stable() -> None:
    parts = ("police", "example", "EXP/2026/1001", "Zebedee", "Quillfeather", "2016-05-12")
    first = deterministic_id(*parts)
    assert first == deterministic_id(*parts)
    assert first.version == 5
    # Pinned: a resend recognised as the same message depends on this never changing.
    assert first == uuid.uuid5(MESSAGE_ID_NAMESPACE, "\x1f".join(parts))
    assert str(MESSAGE_ID_NAMESPACE) == "7b0c3c8e-2f4e-5d8a-9a57-4d2b6f1e9c11"
    assert deterministic_id("a", "b") == uuid.UUID("1c010835-cbfc-58d3-8ba1-b22b9931fedf")


def test_deterministic_id_depends_on_every_part_and_their_order() -> None:
    base = deterministic_id("police", "example", "R1")
    assert deterministic_id("police", "example", "R2") != base
    assert deterministic_id("example", "police", "R1") != base
    assert deterministic_id("police", "example") != base
