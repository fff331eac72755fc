"""Outcomes back to the referrer (issue 5 item 2). Pure.

The MASH's decision on a contact goes, through the gate, to whoever raised the contact: the gate
finds the referrer (the contact's sender) in the ledger and decides the outcome as if the MASH had
named the referrer among its recipients. Each recipient is then matched to its own class's outcome
agreement (``referrer-outcome-*`` in the policy), which sets how much of the outcome it receives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mash_broker.consent_gate.decision import Decision
from mash_broker.consent_gate.gate import decide
from mash_broker.contracts import Envelope, Outcome

# Who may record an outcome: the local authority's front door (``la:<code>``) or the hub (``mash:<id>``).
MASH_SENDER_CLASSES = frozenset({"la", "mash"})


def from_the_mash(message: Envelope) -> bool:
    return message.sender_org.split(":", 1)[0] in MASH_SENDER_CLASSES and message.sender_org != "mash:gate"


def for_referrer(message: Envelope, referrer: str) -> Envelope:
    """The outcome as the gate decides it: the referrer first among its recipients, and no single
    purpose, so each recipient is held to its own class's outcome agreement."""
    recipients = tuple(dict.fromkeys((referrer, *message.recipients)))
    return message.model_copy(update={"recipients": recipients, "purpose": None})


def decide_outcome(message: Envelope, *, referrer: str, **context: Any) -> Decision:
    """``consent_gate.decide`` for an outcome, routed to ``referrer`` too; the trace says why."""
    assert isinstance(message.payload, Outcome)
    decision = decide(for_referrer(message, referrer), **context)
    why = f"recipient: {referrer}, who raised contact {message.payload.contact_message_id}, is told the outcome"
    return replace(decision, trace=(decision.trace[0], why, *decision.trace[1:]))
