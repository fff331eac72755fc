"""Builders for consent-engine tests: messages, consent records and the shipped policy. All synthetic."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gate_pipeline import decide

from mash_broker import defaults
from mash_broker.consent_gate import ConsentFacts, Decision, Policy, parse_policy
from mash_broker.contracts import ConsentDispensation, ConsentRecord, Envelope

ROOT = Path(__file__).resolve().parents[2]
POLICY = parse_policy(defaults.POLICY_FILE.read_text(), source="policy.toml")
NOW = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)
KNOWN = frozenset({"900001"})
CHILD = {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"}


def dob_for_age(age: int) -> str:
    return date(NOW.year - age, 1, 1).isoformat()


def contact(
    *,
    recipients: tuple[str, ...] = ("early_help:team-north",),
    purpose: str | None = "early_help",
    basis: dict[str, Any] | None = None,
    age: int | None = None,
    **envelope: Any,
) -> Envelope:
    """An early-help referral from a school (consent is its basis by default)."""
    subject = dict(CHILD, date_of_birth=dob_for_age(age)) if age is not None else CHILD
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "contact",
            "sender_org": "school:900001",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": subject,
            "lawful_basis": basis if basis is not None else {"article6": "consent"},
            "purpose": purpose,
            "recipients": list(recipients),
            "payload": {
                "kind": "contact",
                "referrer_name": "Ms Example",
                "referrer_role": "DSL",
                "what_happened": "Synthetic concern.",
                "worried_about": "Synthetic worry.",
                "consent_sought": True,
                "consent_given": True,
            },
            **envelope,
        }
    )


def outcome(
    *,
    basis: dict[str, Any] | None = None,
    special: bool = False,
    harm: bool = False,
    recipients: tuple[str, ...] = ("gp:A12345",),
    age: int | None = None,
) -> Envelope:
    """The MASH's outcome for a child's GP (public task under s47 by default)."""
    subject = dict(CHILD, date_of_birth=dob_for_age(age)) if age is not None else CHILD
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "outcome",
            "sender_org": "la:999",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": subject,
            "lawful_basis": basis or {"article6": "public_task", "statutory_power": "children_act_1989_s47"},
            "purpose": "safeguarding_health",
            "recipients": list(recipients),
            "special_category": special,
            "significant_harm_risk": harm,
            "payload": {
                "kind": "outcome",
                "contact_message_id": str(uuid.uuid4()),
                "decision": "strategy_discussion_s47",
                "rationale": "Synthetic rationale.",
                "decided_at": NOW.isoformat(),
            },
        }
    )


def consent(
    status: str = "given",
    *,
    by: str = "parent",
    recipients: tuple[str, ...] = ("early_help",),
    purposes: tuple[str, ...] = ("early_help",),
    recorded: datetime = NOW - timedelta(days=1),
    until: datetime | None = None,
    consent_id: uuid.UUID | None = None,
) -> ConsentRecord:
    return ConsentRecord.model_validate(
        {
            "consent_id": consent_id or uuid.uuid4(),
            "status": status,
            "given_by": by,
            "recipients": list(recipients),
            "purposes": list(purposes),
            "valid_from": recorded,
            "valid_until": until,
            "recorded_by": "Synthetic Worker",
            "recorded_at": recorded,
        }
    )


def dispensation(
    *, reason: str = "would_put_child_at_risk", do_not_notify: bool = False, recipients: tuple[str, ...] = ()
) -> ConsentDispensation:
    return ConsentDispensation.model_validate(
        {
            "dispensation_id": uuid.uuid4(),
            "reason": reason,
            "decided_by": "Team Manager",
            "decided_at": NOW - timedelta(hours=1),
            "rationale": "Synthetic rationale.",
            "recipients": list(recipients),
            "do_not_notify_subject": do_not_notify,
        }
    )


def run(
    message: Envelope, *records: ConsentRecord | ConsentDispensation, policy: Policy = POLICY, now: datetime = NOW
) -> Decision:
    facts = ConsentFacts(
        records=tuple(r for r in records if isinstance(r, ConsentRecord)),
        dispensations=tuple(r for r in records if isinstance(r, ConsentDispensation)),
    )
    return decide(message, known_schools=KNOWN, policy=policy, now=now, facts=facts)
