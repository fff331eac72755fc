"""The envelope every message travels in: identity, provenance, subject, basis, signature slot."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from mash_broker.contracts._base import SCHEMA_VERSION, Contract, OrgId, ShortText, Timestamp
from mash_broker.contracts.lawful_basis import LawfulBasis
from mash_broker.contracts.payloads import Payload

# Namespace for deterministic message ids: the same source record always gets the same id.
MESSAGE_ID_NAMESPACE = uuid.UUID("7b0c3c8e-2f4e-5d8a-9a57-4d2b6f1e9c11")

KINDS_WITH_SUBJECT = frozenset(
    {
        "notification.encompass",
        "contact",
        "outcome",
        "consent",
        "consent.dispensation",
        "care.looked_after_change",
        "health.assessment_request",
        "s47.info_request",
        "s47.gp_report",
        "health.assessment_completed",
    }
)


class Classification(StrEnum):
    """Government Security Classification marking."""

    OFFICIAL = "OFFICIAL"
    OFFICIAL_SENSITIVE = "OFFICIAL-SENSITIVE"


class Identifier(Contract):
    """One identifier of the child in a named scheme (NHS number, UPN, police person id...)."""

    scheme: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
    value: Annotated[str, Field(min_length=1, max_length=64)]


class ChildSubject(Contract):
    """The child the message is about."""

    given_name: ShortText
    family_name: ShortText
    date_of_birth: date
    identifiers: tuple[Identifier, ...] = ()


class Envelope(Contract):
    """A message on any MASH topic."""

    message_id: uuid.UUID
    kind: str
    schema_version: Literal["1"] = SCHEMA_VERSION
    sender_org: OrgId
    sender_local_id: Annotated[str, Field(max_length=128)] | None = None
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    produced_at: Timestamp
    subject: ChildSubject | None = None
    lawful_basis: LawfulBasis | None = None
    consent_ref: uuid.UUID | None = None
    purpose: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")] | None = None
    recipients: tuple[OrgId, ...] = ()
    special_category: bool = False
    significant_harm_risk: bool = False
    do_not_notify_subject: bool = False
    classification: Classification = Classification.OFFICIAL_SENSITIVE
    replay: bool = False
    signature: Annotated[str, Field(max_length=512)] | None = None
    payload: Payload

    @model_validator(mode="after")
    def _kind_matches_payload(self) -> Envelope:
        if self.kind != self.payload.kind:
            # Not quoting ``kind``: it is free text from the sender, and this reason reaches receipts and logs.
            raise ValueError(f"kind does not match payload kind {self.payload.kind!r}")
        if self.kind in KINDS_WITH_SUBJECT and self.subject is None:
            raise ValueError(f"a {self.kind} message needs a subject")
        return self


def deterministic_id(*parts: str) -> uuid.UUID:
    """A message id derived from the source record, so a resend is recognised as the same message."""
    return uuid.uuid5(MESSAGE_ID_NAMESPACE, "\x1f".join(parts))


def id_label(value: object) -> str:
    """Shorthand for logs and tables: the first 8 hex digits of an id."""
    return str(value)[:8]
