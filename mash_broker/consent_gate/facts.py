"""What the gate knows about one child's consent, as of the moment it decides. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from mash_broker.contracts import ChildSubject, ConsentDispensation, ConsentRecord, ConsentStatus


def child_keys(subject: ChildSubject) -> frozenset[str]:
    """Every key a record about this child can be found by: each identifier, and name with birth date."""
    person = f"{subject.given_name.casefold()}|{subject.family_name.casefold()}|{subject.date_of_birth}"
    keys = {"person:" + hashlib.sha256(person.encode()).hexdigest()[:32]}
    keys.update(f"{i.scheme}:{i.value.replace(' ', '').upper()}" for i in subject.identifiers)
    return frozenset(keys)


def age_on(dob: date, day: date) -> int:
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def covers(refs: tuple[str, ...], recipient: str) -> bool:
    """Does a consent or dispensation's recipient list include this organisation?"""
    cls = recipient.split(":", 1)[0]
    return any(ref in (recipient, cls, f"{cls}:*") for ref in refs)


class ConsentState(StrEnum):
    """Parental consent for one recipient and purpose, at one moment."""

    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    NONE = "none"


@dataclass(frozen=True)
class ConsentFinding:
    """The state, and the record it rests on (if any)."""

    state: ConsentState
    record: ConsentRecord | None = None


@dataclass(frozen=True)
class ConsentFacts:
    """Consent records and dispensations for one child, in the order the ledger received them."""

    records: tuple[ConsentRecord, ...] = ()
    dispensations: tuple[ConsentDispensation, ...] = field(default=())

    def parental(self, recipient: str, purpose: str | None, now: datetime) -> ConsentFinding:
        return _latest(self.records, ("parent", "carer"), recipient, purpose, now)

    def childs_view(self, recipient: str, purpose: str | None, now: datetime) -> ConsentFinding:
        return _latest(self.records, ("child",), recipient, purpose, now)

    def dispensation(self, recipient: str, purpose: str | None, now: datetime) -> ConsentDispensation | None:
        found = [
            d
            for d in self.dispensations
            if d.decided_at <= now
            and (d.valid_until is None or now < d.valid_until)
            and (not d.recipients or covers(d.recipients, recipient))
            and (not d.purposes or purpose in d.purposes)
        ]
        return max(found, key=lambda d: d.decided_at) if found else None

    def do_not_notify(self, now: datetime) -> bool:
        return any(d.do_not_notify_subject and d.decided_at <= now for d in self.dispensations)


def _latest(
    records: tuple[ConsentRecord, ...], by: tuple[str, ...], recipient: str, purpose: str | None, now: datetime
) -> ConsentFinding:
    """The most recently recorded record in scope wins: a withdrawal recorded after a consent beats it."""
    in_scope = [
        (r.recorded_at, i, r)
        for i, r in enumerate(records)
        if r.given_by in by
        and r.recorded_at <= now
        # A refusal or withdrawal with no recipients or purposes named is a blanket one.
        and (not r.recipients or covers(r.recipients, recipient))
        and (not r.purposes or purpose in r.purposes)
    ]
    if not in_scope:
        return ConsentFinding(ConsentState.NONE)
    record = max(in_scope, key=lambda x: (x[0], x[1]))[2]
    if record.status is ConsentStatus.GIVEN:
        if now < record.valid_from:
            return ConsentFinding(ConsentState.NONE, record)
        if record.valid_until is not None and now >= record.valid_until:
            return ConsentFinding(ConsentState.EXPIRED, record)
        return ConsentFinding(ConsentState.GIVEN, record)
    return ConsentFinding(ConsentState(record.status.value), record)
