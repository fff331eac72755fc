"""What the gate decides, and the reason codes every decision carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import JsonValue

from mash_broker.contracts import ContentLevel


class Verdict(StrEnum):
    """Share with the named recipients, withhold from everyone, or refer to a person."""

    SHARE = "share"
    WITHHOLD = "withhold"
    REFER = "refer"


class Reason(StrEnum):
    """Machine-readable reason codes; audit records, reports and alerts key on these."""

    NO_LAWFUL_BASIS = "no_lawful_basis"
    NO_AGREEMENT_FOR_KIND = "no_agreement_for_kind"
    NO_AGREEMENT_FOR_RECIPIENT = "no_agreement_for_recipient"
    NO_RECIPIENT = "no_recipient"
    BASIS_NOT_IN_AGREEMENT = "basis_not_in_agreement"
    STATUTORY_POWER_NOT_IN_AGREEMENT = "statutory_power_not_in_agreement"
    STATUTORY_DUTY = "statutory_duty"
    SUBJECT_NOT_A_CHILD = "subject_not_a_child"
    OUTSIDE_AGREEMENT_AGE = "outside_agreement_age"
    SCHOOL_NOT_GIVEN = "school_not_given"
    SCHOOL_NOT_IN_DIRECTORY = "school_not_in_directory"
    MINIMUM_FIELDS_RELEASED = "minimum_fields_released"
    NO_ARTICLE9_CONDITION = "no_article9_condition"
    ARTICLE9_NOT_IN_AGREEMENT = "article9_not_in_agreement"
    ARTICLE9_UNCERTAIN_SAFEGUARDING = "article9_uncertain_safeguarding"
    PARA18_REASON_NOT_RECORDED = "para18_reason_not_recorded"
    PARA18_REASON_RECORDED = "para18_reason_recorded"
    CONSENT_GIVEN = "consent_given"
    CONSENT_REFUSED = "consent_refused"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_EXPIRED = "consent_expired"
    NO_CONSENT_RECORDED = "no_consent_recorded"
    REFUSAL_OVERRIDDEN_SIGNIFICANT_HARM = "refusal_overridden_significant_harm"
    REFUSAL_RATIONALE_REQUIRED = "refusal_rationale_required"
    CHILD_VIEW_RECORDED = "child_view_recorded"
    CHILD_OBJECTS = "child_objects"
    DO_NOT_NOTIFY_SUBJECT = "do_not_notify_subject"
    CONSENT_FORM_MISSING = "consent_form_missing"
    HOME_AUTHORITY_UNKNOWN = "home_authority_unknown"


# Plain English for each reason, for explanations, tables and the advice queue.
REASON_TEXT: dict[Reason, str] = {
    Reason.NO_LAWFUL_BASIS: "the message records no lawful basis for sharing",
    Reason.NO_AGREEMENT_FOR_KIND: "no sharing agreement covers this kind of message",
    Reason.NO_AGREEMENT_FOR_RECIPIENT: "no sharing agreement lets this recipient receive this for this purpose",
    Reason.NO_RECIPIENT: "the message names no recipient and none can be derived",
    Reason.BASIS_NOT_IN_AGREEMENT: "the lawful basis given is not one the agreement accepts",
    Reason.STATUTORY_POWER_NOT_IN_AGREEMENT: "the statutory power given is not one the agreement accepts",
    Reason.STATUTORY_DUTY: "shared without consent under a statutory function",
    Reason.SUBJECT_NOT_A_CHILD: "the subject is not a child (18 or over)",
    Reason.OUTSIDE_AGREEMENT_AGE: "the child's age is outside the ages the agreement covers",
    Reason.SCHOOL_NOT_GIVEN: "no school given: children's social care (MASH) must decide where it goes",
    Reason.SCHOOL_NOT_IN_DIRECTORY: "the school is not in the directory: a person must check it",
    Reason.MINIMUM_FIELDS_RELEASED: "only the fields the recipient's purpose needs were released",
    Reason.NO_ARTICLE9_CONDITION: "special-category data with no Article 9 condition",
    Reason.ARTICLE9_NOT_IN_AGREEMENT: "the Article 9 condition given is not one the agreement accepts",
    Reason.ARTICLE9_UNCERTAIN_SAFEGUARDING: (
        "special-category data with no Article 9 condition but a safeguarding concern: a person must decide"
    ),
    Reason.PARA18_REASON_NOT_RECORDED: "Schedule 1 para 18 needs the reason consent was not used "
    "(cannot be given, cannot reasonably be obtained, or asking would put the child at risk): a person must record it",
    Reason.PARA18_REASON_RECORDED: "Schedule 1 para 18 relied on, with the reason consent was not used recorded",
    Reason.CONSENT_GIVEN: "parental consent covers this recipient and purpose",
    Reason.CONSENT_REFUSED: "consent was refused and there is no recorded risk of significant harm",
    Reason.CONSENT_WITHDRAWN: "consent was withdrawn: sharing stops from then on",
    Reason.CONSENT_EXPIRED: "the consent relied on has expired",
    Reason.NO_CONSENT_RECORDED: "consent is the basis but no consent covering this recipient and purpose is recorded",
    Reason.REFUSAL_OVERRIDDEN_SIGNIFICANT_HARM: "consent was refused but the child is at risk of significant harm; "
    "rationale and decision maker recorded",
    Reason.REFUSAL_RATIONALE_REQUIRED: "consent was refused: overriding it for risk of significant harm "
    "needs a recorded rationale and decision maker",
    Reason.CHILD_VIEW_RECORDED: "the child's own view is recorded; child protection duties override a refusal",
    Reason.CHILD_OBJECTS: "a child of sufficient understanding objects: a person must weigh their view",
    Reason.DO_NOT_NOTIFY_SUBJECT: "the record says do not notify the subject or their family",
    Reason.CONSENT_FORM_MISSING: "an initial health assessment request needs the signed consent form "
    "(payload.consent_form): consent form missing",
    Reason.HOME_AUTHORITY_UNKNOWN: "the child's home authority is not known from the home postcode: "
    "a person must find which local authority's MASH is told",
}

ADVICE_QUEUE = "advice"
MASH_QUEUE = "mash"


@dataclass(frozen=True)
class Release:
    """What one recipient receives under one agreement."""

    recipient: str
    agreement: str
    purpose: str
    content_level: ContentLevel
    released: dict[str, JsonValue]
    consent_id: UUID | None = None
    reasons: tuple[Reason, ...] = ()
    # In a region (``core.areas``): the local authority whose agreement released it, and that policy's version.
    area: str | None = None
    policy_version: str | None = None


@dataclass(frozen=True)
class Refusal:
    """One recipient the message was not released to, and why."""

    recipient: str
    verdict: Verdict
    reasons: tuple[Reason, ...]
    area: str | None = None  # in a region: the local authority whose agreement refused it


@dataclass(frozen=True)
class Decision:
    """The gate's decision on one message; recorded whatever the verdict."""

    message_id: UUID
    verdict: Verdict
    reasons: tuple[Reason, ...]
    policy_version: str
    decided_at: datetime
    releases: tuple[Release, ...] = ()
    refer_to: str | None = None
    trace: tuple[str, ...] = field(default=())
    not_released: tuple[Refusal, ...] = ()
    basis_used: str | None = None
    consent_id: UUID | None = None
    dispensation_id: UUID | None = None
    # The routing problems (from ``Route.problems``) that sent it to the MASH queue for a person to route.
    routing_problems: tuple[Reason, ...] = ()

    @property
    def primary_reason(self) -> Reason:
        return self.reasons[0]
