"""Sharing agreements: who may receive which message kinds, for what purpose, on which bases, which fields.

Agreements are data: `consent_gate.policy` reads them from a versioned TOML file. ``BUILTIN_POLICY``
holds the Operation Encompass agreement alone, for tests and as the floor of every shipped policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mash_broker.contracts import Article6Basis, Article9Condition, ContentLevel, StatutoryPower


class WithoutRecipientKey(StrEnum):
    """What a delivery under an agreement does when its recipient has no encryption key in force."""

    REFUSE = "refuse"  # not sent: the default (only the recipient may read what is shared with it)
    TLS_ONLY = "tls_only"  # sent readable, protected on the wire by TLS alone, with a recorded warning


@dataclass(frozen=True)
class SharingAgreement:
    """One recipient class and purpose: what it may receive and on what basis."""

    name: str
    recipient_class: str
    purpose: str
    message_kinds: frozenset[str]
    article6_bases: frozenset[Article6Basis]
    statutory_powers: frozenset[StatutoryPower]
    released_fields: tuple[str, ...]
    content_level: ContentLevel
    article9_conditions: frozenset[Article9Condition] = frozenset()
    min_age: int | None = None
    max_age: int | None = None
    without_recipient_key: WithoutRecipientKey = WithoutRecipientKey.REFUSE

    def accepts_kind(self, kind: str) -> bool:
        return kind in self.message_kinds


@dataclass(frozen=True)
class Policy:
    """The set of agreements in force, with the version every decision records."""

    version: str
    agreements: tuple[SharingAgreement, ...]
    gillick_age: int = 12
    default_recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def agreement(self, name: str) -> SharingAgreement | None:
        """The agreement called ``name`` (a release names the one it was made under), or None."""
        return next((a for a in self.agreements if a.name == name), None)

    def for_kind(self, kind: str) -> tuple[SharingAgreement, ...]:
        return tuple(a for a in self.agreements if a.accepts_kind(kind))

    def for_recipient(self, recipient: str, kind: str, purpose: str | None) -> tuple[SharingAgreement, ...]:
        cls = recipient.split(":", 1)[0]
        return tuple(
            a for a in self.for_kind(kind) if a.recipient_class == cls and (purpose is None or a.purpose == purpose)
        )


# The statutory list (Home Office guidance, Nov 2025), less the home address and other people's details.
ENCOMPASS_SCHOOL_FIELDS: tuple[str, ...] = (
    "subject.given_name",
    "subject.family_name",
    "subject.date_of_birth",
    "payload.police_reference",
    "payload.occurred_at",
    "payload.child_present",
    "payload.summary_for_school",
)

ENCOMPASS_AGREEMENT = SharingAgreement(
    name="operation-encompass-school-key-adults",
    recipient_class="school",
    purpose="operation_encompass",
    message_kinds=frozenset({"notification.encompass"}),
    article6_bases=frozenset({Article6Basis.LEGAL_OBLIGATION, Article6Basis.PUBLIC_TASK}),
    statutory_powers=frozenset({StatutoryPower.ENCOMPASS_DUTY}),
    released_fields=ENCOMPASS_SCHOOL_FIELDS,
    content_level=ContentLevel.FULL,
    max_age=17,
)

BUILTIN_POLICY = Policy(version="builtin-2026.11-1", agreements=(ENCOMPASS_AGREEMENT,))
