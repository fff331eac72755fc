"""Contact quality (issue 5 item 1): each element screening needs, named when it is missing. Pure."""

from __future__ import annotations

from typing import Any

import pytest
from consent_builders import CHILD, contact, outcome
from pydantic import ValidationError

from mash_broker.contracts import Envelope
from mash_broker.contracts.quality import Missing, contact_quality, quality_detail

IDENTIFIED = dict(CHILD, identifiers=[{"scheme": "nhs_number", "value": "9990000018"}])


def referral(*, subject: dict[str, Any] = IDENTIFIED, basis: dict[str, Any] | None = None, **payload: Any) -> Envelope:
    base = contact()
    doc = base.model_dump(mode="json")
    doc["subject"] = subject
    doc["payload"].update(payload)
    if basis is not None:
        doc["lawful_basis"] = basis
    return Envelope.model_validate(doc)


def fields(message: Envelope) -> list[str]:
    return [m.field for m in contact_quality(message)]


def test_a_complete_contact_has_no_gaps() -> None:
    assert contact_quality(referral()) == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": CHILD}, "subject.identifiers"),
        ({"what_happened": "  "}, "payload.what_happened"),
        ({"worried_about": ""}, "payload.worried_about"),
        ({"consent_given": None}, "payload.consent_given"),
        ({"consent_sought": False, "consent_given": None}, "payload.consent_sought"),
    ],
)
def test_each_missing_element_is_named(change: dict[str, Any], field: str) -> None:
    assert fields(referral(**change)) == [field]


def test_consent_not_sought_with_the_reason_recorded_is_complete() -> None:
    basis = {
        "article6": "public_task",
        "statutory_power": "children_act_1989_s47",
        "consent_not_used_because": "would_put_child_at_risk",
    }
    assert contact_quality(referral(consent_sought=False, consent_given=None, basis=basis)) == ()


def test_an_answer_to_a_question_not_asked_is_flagged() -> None:
    basis = {"article6": "public_task", "consent_not_used_because": "cannot_be_given"}
    assert fields(referral(consent_sought=False, consent_given=True, basis=basis)) == ["payload.consent_given"]


def test_every_gap_at_once_and_the_detail_quotes_no_values() -> None:
    message = referral(subject=CHILD, what_happened="", worried_about="", consent_sought=False, consent_given=None)
    gaps = contact_quality(message)
    assert [g.field for g in gaps] == [
        "subject.identifiers",
        "payload.what_happened",
        "payload.worried_about",
        "payload.consent_sought",
    ]
    detail = quality_detail(gaps)
    assert all(g.field in detail for g in gaps)
    for value in ("Zebedee", "Quillfeather", "2016-05-12", "Ms Example"):
        assert value not in detail


def test_other_kinds_are_not_checked() -> None:
    assert contact_quality(outcome()) == ()
    assert str(Missing("payload.x", "why")) == "payload.x: why"


def test_an_outcome_without_a_rationale_fails_its_contract_naming_the_field() -> None:
    doc = outcome().model_dump(mode="json")
    doc["payload"]["rationale"] = "  "
    with pytest.raises(ValidationError) as err:
        Envelope.model_validate(doc)
    (problem,) = err.value.errors()
    assert problem["loc"] == ("payload", "outcome", "rationale")
