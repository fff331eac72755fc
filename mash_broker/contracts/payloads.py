"""Payloads v1: what an envelope carries, discriminated by ``kind``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, JsonValue, model_validator

from mash_broker.contracts._base import Contract, FreeText, OrgId, RecipientRef, SchoolUrn, ShortText, Timestamp
from mash_broker.contracts.clocks import ClockAlert
from mash_broker.contracts.corrections import DeliveryWithdrawn, NotificationWithdrawn
from mash_broker.contracts.health import (
    GpReport,
    HealthAssessmentCompleted,
    HealthAssessmentRequest,
    LookedAfterChange,
    S47InfoRequest,
)
from mash_broker.contracts.lawful_basis import ConsentNotUsedBecause


class ChildPresent(StrEnum):
    """Whether the child was present at the incident."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class EncompassNotification(Contract):
    """Police tell a child's school of a domestic abuse incident (Operation Encompass)."""

    kind: Literal["notification.encompass"] = "notification.encompass"
    police_reference: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_-]{1,40}$")]
    force: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    incident_type: Literal["domestic_abuse"] = "domestic_abuse"
    occurred_at: Timestamp
    reported_at: Timestamp
    child_present: ChildPresent
    school_urn: SchoolUrn | None = None
    home_postcode: Annotated[str, Field(max_length=10)] | None = None
    summary_for_school: FreeText = ""
    # A correction: the message id of the version this one replaces (contracts.corrections).
    supersedes: UUID | None = None

    @model_validator(mode="after")
    def _reported_after_occurred(self) -> EncompassNotification:
        if self.reported_at < self.occurred_at:
            raise ValueError("reported_at is before occurred_at")
        return self


class Contact(Contract):
    """A concern about a child sent to the MASH."""

    kind: Literal["contact"] = "contact"
    referrer_name: ShortText
    referrer_role: ShortText
    what_happened: FreeText
    worried_about: FreeText
    consent_sought: bool
    consent_given: bool | None = None


class OutcomeDecision(StrEnum):
    """What the MASH decided on a contact."""

    NO_FURTHER_ACTION = "no_further_action"
    INFORMATION_AND_ADVICE = "information_and_advice"
    EARLY_HELP = "early_help"
    CHILD_IN_NEED_S17 = "child_in_need_s17"
    STRATEGY_DISCUSSION_S47 = "strategy_discussion_s47"


class Outcome(Contract):
    """The MASH's decision on a contact, fed back to the referrer."""

    kind: Literal["outcome"] = "outcome"
    contact_message_id: UUID
    decision: OutcomeDecision
    rationale: Annotated[FreeText, Field(min_length=1)]  # every decision says why
    decided_at: Timestamp


class ConsentStatus(StrEnum):
    """Lifecycle of a consent record."""

    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class ConsentRecord(Contract):
    """Parental (or the child's own) consent to share, with its scope and period."""

    kind: Literal["consent"] = "consent"
    consent_id: UUID
    status: ConsentStatus
    given_by: Literal["parent", "carer", "child"]
    recipients: tuple[RecipientRef, ...] = ()
    purposes: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")], ...] = ()
    valid_from: Timestamp
    valid_until: Timestamp | None = None
    recorded_by: ShortText
    recorded_at: Timestamp
    notes: FreeText | None = None

    @model_validator(mode="after")
    def _period(self) -> ConsentRecord:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until is not after valid_from")
        if self.status is ConsentStatus.GIVEN and not (self.recipients and self.purposes):
            raise ValueError("a given consent must say which recipients and which purposes")
        return self


class ConsentDispensation(Contract):
    """Consent deliberately not sought, with the Schedule 1 para 18 reason, who decided and when."""

    kind: Literal["consent.dispensation"] = "consent.dispensation"
    dispensation_id: UUID
    reason: ConsentNotUsedBecause
    decided_by: ShortText
    decided_at: Timestamp
    rationale: FreeText
    recipients: tuple[RecipientRef, ...] = ()
    purposes: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")], ...] = ()
    valid_until: Timestamp | None = None
    do_not_notify_subject: bool = False


class ReceiptStatus(StrEnum):
    """What a system did with a message it received."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    REFERRED = "referred"
    DELIVERED = "delivered"
    # A delivery its recipient's system did not acknowledge in time (a declared delivery clock breached):
    # the non-delivery report to the original sender. A later receipt is still recorded.
    NOT_DELIVERED = "not_delivered"
    # A correction recorded: the version it supersedes withdrawn, this one decided (contracts.corrections).
    CORRECTED = "corrected"
    # A withdrawal recorded: every copy of the notification withdrawn.
    WITHDRAWN = "withdrawn"


class SystemReceipt(Contract):
    """A system (the gate, an agency adapter) received a message: machine acknowledgement."""

    kind: Literal["ack.system_receipt"] = "ack.system_receipt"
    receipted_message_id: UUID
    status: ReceiptStatus
    reason_code: Annotated[str, Field(max_length=64)] | None = None
    detail: FreeText | None = None
    received_at: Timestamp


class PersonRead(Contract):
    """A named person (a school's Key Adult) opened and read a notification."""

    kind: Literal["ack.person_read"] = "ack.person_read"
    read_message_id: UUID
    reader_name: ShortText
    reader_org: OrgId
    read_at: Timestamp


class ContentLevel(StrEnum):
    """How much a recipient receives (FHIR Subscriptions' empty / id-only / full)."""

    FULL = "full"
    SUMMARY = "summary"
    NOTICE = "notice"


class Delivery(Contract):
    """What the gate releases to one recipient: only the fields its purpose needs."""

    kind: Literal["delivery"] = "delivery"
    source_message_id: UUID
    source_kind: ShortText
    recipient: OrgId
    purpose: ShortText
    content_level: ContentLevel
    released: dict[str, JsonValue]
    notify_by: Timestamp | None = None
    policy_version: ShortText
    decision_reasons: tuple[str, ...]


class Quarantined(Contract):
    """A message the gate would not deliver, with the reason (sent to the quarantine topic)."""

    kind: Literal["quarantined"] = "quarantined"
    source_message_id: UUID | None
    sender_org: OrgId | None
    reason_code: Annotated[str, Field(max_length=64)]
    detail: FreeText


Payload = Annotated[
    EncompassNotification
    | NotificationWithdrawn
    | DeliveryWithdrawn
    | Contact
    | Outcome
    | ConsentRecord
    | ConsentDispensation
    | SystemReceipt
    | PersonRead
    | Delivery
    | Quarantined
    | LookedAfterChange
    | HealthAssessmentRequest
    | S47InfoRequest
    | GpReport
    | HealthAssessmentCompleted
    | ClockAlert,
    Field(discriminator="kind"),
]
