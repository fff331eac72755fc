"""Looked-after changes, initial health assessment and s47 requests (issue 5 item 3b-d): contracts, the gate's
decision and the deadlines. Pure; all data synthetic."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from consent_builders import CHILD, KNOWN, NOW, POLICY
from gate_pipeline import decide
from pydantic import ValidationError

from mash_broker.agencies.health.deadlines import AnswerStatus, answer_status, due_by, iha_due
from mash_broker.consent_gate import Reason, Verdict
from mash_broker.contracts import Envelope

LONDON = ZoneInfo("Europe/London")
FORM = {"document_id": "la-999/forms/0001", "sha256": "ab" * 32}
S47 = {
    "article6": "public_task",
    "statutory_power": "children_act_1989_s47",
    "article9": "dpa2018_sch1_para18",
    "consent_not_used_because": "would_put_child_at_risk",
}
LAC = {"article6": "public_task", "statutory_power": "children_act_1989_s22", "article9": "dpa2018_sch1_para2"}


def health_message(
    payload: dict[str, Any],
    *,
    recipients: tuple[str, ...],
    sender: str = "la:999",
    basis: dict[str, Any] = LAC,
    purpose: str = "looked_after_health",
) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": payload["kind"],
            "sender_org": sender,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": basis,
            "purpose": purpose,
            "recipients": list(recipients),
            "special_category": True,
            "payload": payload,
        }
    )


def iha(form: dict[str, str] | None = FORM) -> Envelope:
    payload = {
        "kind": "health.assessment_request",
        "looked_after_since": "2026-11-16",
        "requested_by": "Synthetic Social Worker",
        **({"consent_form": form} if form else {}),
    }
    return health_message(payload, recipients=("health:lac-team",))


def test_gp_is_told_when_a_child_becomes_and_stops_being_looked_after() -> None:
    for change in (
        {"change": "became_looked_after", "legal_status": "s31_care_order"},
        {"change": "ceased_looked_after"},
    ):
        msg = health_message(
            {"kind": "care.looked_after_change", "effective_on": "2026-11-16", **change}, recipients=("gp:A12345",)
        )
        d = decide(msg, known_schools=KNOWN, policy=POLICY, now=NOW)
        (release,) = d.releases
        assert (release.recipient, release.agreement) == ("gp:A12345", "gp-practice-looked-after")
        assert release.released["payload.change"] == change["change"]


def test_becoming_looked_after_needs_the_legal_status() -> None:
    with pytest.raises(ValidationError, match="legal_status is required"):
        health_message(
            {"kind": "care.looked_after_change", "change": "became_looked_after", "effective_on": "2026-11-16"},
            recipients=("gp:A12345",),
        )


def test_an_iha_request_with_its_consent_form_goes_to_health_with_the_reference_only() -> None:
    d = decide(iha(), known_schools=KNOWN, policy=POLICY, now=NOW)
    (release,) = d.releases
    assert release.recipient == "health:lac-team"
    assert release.released["payload.consent_form"] == FORM


def test_an_iha_request_without_its_consent_form_is_refused_with_the_reason() -> None:
    d = decide(iha(form=None), known_schools=KNOWN, policy=POLICY, now=NOW)
    assert (d.verdict, d.reasons) == (Verdict.WITHHOLD, (Reason.CONSENT_FORM_MISSING,))
    assert not d.releases


@pytest.mark.parametrize("doc", [{"document_id": "x", "sha256": "not-a-hash"}, {"document_id": "", "sha256": "a" * 64}])
def test_a_consent_form_reference_is_an_id_and_a_sha256(doc: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        iha(form=doc)


def test_s47_request_to_the_gp_and_report_back_to_the_la() -> None:
    request = health_message(
        {
            "kind": "s47.info_request",
            "questions": "Known to the practice?",
            "answer_by": (NOW + timedelta(days=5)).isoformat(),
            "requested_by": "SW",
        },
        recipients=("gp:A12345",),
        basis=S47,
        purpose="child_protection_enquiry",
    )
    (to_gp,) = decide(request, known_schools=KNOWN, policy=POLICY, now=NOW).releases
    assert to_gp.agreement == "gp-practice-s47-request"
    report = health_message(
        {
            "kind": "s47.gp_report",
            "request_message_id": str(request.message_id),
            "known_to_practice": True,
            "report": "Synthetic.",
            "author": "Dr Example",
        },
        recipients=("la:999",),
        sender="gp:A12345",
        basis=S47,
        purpose="child_protection_enquiry",
    )
    (to_la,) = decide(report, known_schools=KNOWN, policy=POLICY, now=NOW).releases
    assert (to_la.recipient, to_la.agreement) == ("la:999", "la-s47-gp-report")


def test_iha_due_counts_20_working_days_past_bank_holidays() -> None:
    # Monday 14 December 2026: Christmas Day and the Boxing Day substitute (28th) and New Year's Day skipped.
    assert iha_due(date(2026, 12, 14), LONDON) == datetime(2027, 1, 15, 0, 0, tzinfo=LONDON)
    assert iha_due(date(2026, 6, 5), LONDON) == datetime(2026, 7, 4, 0, 0, tzinfo=LONDON)  # BST: local midnight
    assert due_by(iha(), LONDON) == iha_due(date(2026, 11, 16), LONDON)


@pytest.mark.parametrize(
    ("answered", "now", "status"),
    [
        (timedelta(hours=-1), timedelta(days=9), AnswerStatus.ANSWERED_ON_TIME),
        (timedelta(0), timedelta(days=9), AnswerStatus.ANSWERED_ON_TIME),
        (timedelta(seconds=1), timedelta(days=9), AnswerStatus.ANSWERED_LATE),
        (None, timedelta(seconds=1), AnswerStatus.OVERDUE),
        (None, timedelta(hours=-1), AnswerStatus.AWAITING),
    ],
)
def test_answer_status(answered: timedelta | None, now: timedelta, status: AnswerStatus) -> None:
    due = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    assert answer_status(due, due + answered if answered is not None else None, due + now) is status
