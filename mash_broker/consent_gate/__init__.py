"""The consent gate: pure decisions over typed inputs and ``now``. No I/O, no imports from broker or adapters."""

from mash_broker.consent_gate.agreements import (
    BUILTIN_POLICY,
    ENCOMPASS_AGREEMENT,
    Policy,
    SharingAgreement,
    WithoutRecipientKey,
)
from mash_broker.consent_gate.decision import (
    ADVICE_QUEUE,
    MASH_QUEUE,
    REASON_TEXT,
    Decision,
    Reason,
    Refusal,
    Release,
    Verdict,
)
from mash_broker.consent_gate.facts import ConsentFacts, ConsentState, child_keys
from mash_broker.consent_gate.gate import decide, project, subject_age
from mash_broker.consent_gate.policy import RECORD_ONLY_KINDS, parse_policy
from mash_broker.consent_gate.routing import NO_ROUTE, PreCheck, Route

__all__ = [
    "ADVICE_QUEUE",
    "BUILTIN_POLICY",
    "ENCOMPASS_AGREEMENT",
    "MASH_QUEUE",
    "NO_ROUTE",
    "REASON_TEXT",
    "RECORD_ONLY_KINDS",
    "ConsentFacts",
    "ConsentState",
    "Decision",
    "Policy",
    "PreCheck",
    "Reason",
    "Refusal",
    "Release",
    "Route",
    "SharingAgreement",
    "Verdict",
    "WithoutRecipientKey",
    "child_keys",
    "decide",
    "parse_policy",
    "project",
    "subject_age",
]
