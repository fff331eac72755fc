"""Health payloads v1 (issue 5 item 3): looked-after changes to the GP, initial health assessment requests,
s47 information requests to a GP practice and the GP's report back. Pure."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, model_validator

from mash_broker.contracts._base import Contract, FreeText, ShortText, Timestamp


class LegalStatus(StrEnum):
    """Why a child is looked after (Children Act 1989)."""

    S20_ACCOMMODATED = "s20_accommodated"
    S31_CARE_ORDER = "s31_care_order"
    S38_INTERIM_CARE_ORDER = "s38_interim_care_order"
    S44_EMERGENCY_PROTECTION = "s44_emergency_protection_order"
    S46_POLICE_PROTECTION = "s46_police_protection"
    PLACEMENT_ORDER = "placement_order"
    REMAND = "remand"


class LookedAfterChange(Contract):
    """The local authority tells the child's GP practice the child became, or stopped being, looked after."""

    kind: Literal["care.looked_after_change"] = "care.looked_after_change"
    change: Literal["became_looked_after", "ceased_looked_after"]
    effective_on: date
    legal_status: LegalStatus | None = None

    @model_validator(mode="after")
    def _status_when_became(self) -> LookedAfterChange:
        if self.change == "became_looked_after" and self.legal_status is None:
            raise ValueError("legal_status is required when a child becomes looked after")
        return self


class DocumentRef(Contract):
    """A document held by its owner, named by id and content hash: the broker never carries the document."""

    document_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,128}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class HealthAssessmentRequest(Contract):
    """The local authority asks health for a looked-after child's initial health assessment.

    ``consent_form`` is optional in the contract so that a request without it is received and refused
    with the reason ``consent_form_missing`` (the gate), rather than lost as malformed."""

    kind: Literal["health.assessment_request"] = "health.assessment_request"
    looked_after_since: date
    consent_form: DocumentRef | None = None
    requested_by: ShortText


class S47InfoRequest(Contract):
    """A s47 enquiry asks the child's GP practice for a report, to be answered by ``answer_by``."""

    kind: Literal["s47.info_request"] = "s47.info_request"
    questions: FreeText = Field(min_length=1)
    answer_by: Timestamp
    requested_by: ShortText


class GpReport(Contract):
    """The GP practice's report back, answering one s47 information request."""

    kind: Literal["s47.gp_report"] = "s47.gp_report"
    request_message_id: UUID
    known_to_practice: bool
    report: FreeText = Field(min_length=1)
    author: ShortText


class HealthAssessmentCompleted(Contract):
    """Health tells the local authority the initial health assessment it asked for was done."""

    kind: Literal["health.assessment_completed"] = "health.assessment_completed"
    request_message_id: UUID
    completed_on: date
    health_plan_ref: DocumentRef | None = None
