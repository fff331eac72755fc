"""Contact quality: what screening needs that a valid contact may still lack. Pure.

A contact that fails its contract (no child's name or date of birth, no referrer) is rejected. One
that passes may still be too thin to screen; it is accepted, and the referrer gets a quality receipt
naming each gap (``Missing``). Gaps are named by field and reason, never by quoting a value.
"""

from __future__ import annotations

from dataclasses import dataclass

from mash_broker.contracts.envelope import Envelope
from mash_broker.contracts.payloads import Contact

CONTACT_INCOMPLETE = "contact_incomplete"


@dataclass(frozen=True)
class Missing:
    """One thing screening needs that the contact does not give."""

    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.field}: {self.why}"


def contact_quality(message: Envelope) -> tuple[Missing, ...]:
    """What screening needs and ``message`` (a contact) lacks; empty for a complete contact or another kind."""
    contact = message.payload
    if not isinstance(contact, Contact):
        return ()
    gaps: list[Missing] = []
    # Who the child is: name and date of birth are enforced by the contract; an identifier lets the
    # MASH find the child's records (NHS number, UPN, police person id) without guessing.
    if message.subject is not None and not message.subject.identifiers:
        gaps.append(
            Missing(
                "subject.identifiers", "no identifier (NHS number, UPN or police person id) to find the child's records"
            )
        )
    if not contact.what_happened:
        gaps.append(Missing("payload.what_happened", "what happened is not described"))
    if not contact.worried_about:
        gaps.append(Missing("payload.worried_about", "what the referrer is worried about is not said"))
    if contact.consent_sought and contact.consent_given is None:
        gaps.append(Missing("payload.consent_given", "consent was sought but the answer is not recorded"))
    if not contact.consent_sought and (
        message.lawful_basis is None or message.lawful_basis.consent_not_used_because is None
    ):
        gaps.append(
            Missing(
                "payload.consent_sought",
                "consent was not sought and why not is not recorded (lawful_basis.consent_not_used_because)",
            )
        )
    if not contact.consent_sought and contact.consent_given is not None:
        gaps.append(Missing("payload.consent_given", "an answer is recorded but consent was not sought"))
    return tuple(gaps)


def quality_detail(gaps: tuple[Missing, ...]) -> str:
    """The quality receipt's detail: each gap as ``field: reason``, field names only, no values."""
    return "; ".join(str(g) for g in gaps)[:2000]
