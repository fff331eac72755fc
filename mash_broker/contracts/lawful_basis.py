"""The lawful basis a sender claims for sharing (UK GDPR Art 6, Art 9, DPA 2018 Sch 1)."""

from __future__ import annotations

from enum import StrEnum

from mash_broker.contracts._base import Contract, FreeText, ShortText


class Article6Basis(StrEnum):
    """UK GDPR Article 6 bases the gate recognises."""

    PUBLIC_TASK = "public_task"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    CONSENT = "consent"


class StatutoryPower(StrEnum):
    """Statutory functions that give a basis to share without consent."""

    CHILDREN_ACT_1989_S47 = "children_act_1989_s47"
    CHILDREN_ACT_1989_S17 = "children_act_1989_s17"
    CHILDREN_ACT_1989_S22 = "children_act_1989_s22"  # duties to looked-after children (and Care Planning Regs 2010)
    CHILDREN_ACT_2004_S10 = "children_act_2004_s10"
    CHILDREN_ACT_2004_S11 = "children_act_2004_s11"
    ENCOMPASS_DUTY = "encompass_duty_vpa_2024"


class Article9Condition(StrEnum):
    """Special-category conditions (DPA 2018 Schedule 1)."""

    SAFEGUARDING_PARA_18 = "dpa2018_sch1_para18"
    HEALTH_SOCIAL_CARE_PARA_2 = "dpa2018_sch1_para2"


class ConsentNotUsedBecause(StrEnum):
    """Why consent was not the basis, as Schedule 1 para 18 requires to be recorded."""

    CANNOT_BE_GIVEN = "cannot_be_given"
    CANNOT_REASONABLY_BE_OBTAINED = "cannot_reasonably_be_obtained"
    WOULD_PUT_CHILD_AT_RISK = "would_put_child_at_risk"


class LawfulBasis(Contract):
    """What the sender relies on to share this message."""

    article6: Article6Basis
    statutory_power: StatutoryPower | None = None
    article9: Article9Condition | None = None
    consent_not_used_because: ConsentNotUsedBecause | None = None
    decided_by: ShortText | None = None
    rationale: FreeText | None = None
