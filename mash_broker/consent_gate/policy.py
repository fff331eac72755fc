"""Sharing agreements as data: a versioned TOML policy, validated, turned into a `Policy`. Pure (text in)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, model_validator

from mash_broker.consent_gate.agreements import Policy, SharingAgreement, WithoutRecipientKey
from mash_broker.contracts import Article6Basis, Article9Condition, ContentLevel, PolicyError, StatutoryPower
from mash_broker.contracts.envelope import ChildSubject, Envelope
from mash_broker.contracts.payloads import ConsentDispensation, ConsentRecord
from mash_broker.contracts.schemas import CONTRACTS

# The kinds an agreement may name, and the payload model whose fields it may release: by default any
# payload contract; the running stack passes the agencies' (``Registry.policy_kinds``).
ANY_PAYLOAD_KINDS: Mapping[str, type[BaseModel]] = {k: m for k, m in CONTRACTS.items() if k != "envelope"}
_NEVER_RELEASED = {"signature", "payload", "subject", "lawful_basis"}
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{1,63}$")]
Purpose = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]


class _Spec(BaseModel, frozen=True, extra="forbid"):
    pass


class AgreementSpec(_Spec):
    """One agreement as written in the policy file."""

    name: Name
    recipient_class: Name
    purpose: Purpose
    message_kinds: list[str] = Field(min_length=1)
    article6: list[Article6Basis] = Field(min_length=1)
    statutory_powers: list[StatutoryPower] = []
    article9: list[Article9Condition] = []
    released_fields: list[str] = Field(min_length=1)
    content_level: ContentLevel
    min_age: Annotated[int, Field(ge=0, le=25)] | None = None
    max_age: Annotated[int, Field(ge=0, le=25)] | None = None
    # A recipient with no encryption key in force: "refuse" the delivery (default) or send it over TLS alone.
    without_recipient_key: WithoutRecipientKey = WithoutRecipientKey.REFUSE

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> AgreementSpec:
        kinds: Mapping[str, type[BaseModel]] = (info.context or {}).get("kinds", ANY_PAYLOAD_KINDS)
        for i, kind in enumerate(self.message_kinds):
            if kind not in kinds:
                raise ValueError(f"message_kinds[{i}]: unknown kind {kind!r} (known: {sorted(kinds)})")
        for i, path in enumerate(self.released_fields):
            if not any(_path_exists(path, kinds[k]) for k in self.message_kinds):
                raise ValueError(f"released_fields[{i}]: {path!r} is not a field of any kind this agreement covers")
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        return self


class PolicySpec(_Spec):
    """The whole policy file."""

    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    gillick_age: Annotated[int, Field(ge=10, le=16)] = 12
    default_recipients: dict[str, list[str]] = {}
    agreement: list[AgreementSpec] = Field(min_length=1)


def parse_policy(text: str, *, source: str, kinds: Mapping[str, type[BaseModel]] | None = None) -> Policy:
    """Parse and validate a policy file's text; any problem is a PolicyError naming the field. ``kinds``:
    the message kinds an agreement may name and their payload models (None: any payload contract)."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=source) from exc
    return policy_from_document(raw, source=source, kinds=kinds)


def policy_from_document(
    raw: Mapping[str, Any], *, source: str, kinds: Mapping[str, type[BaseModel]] | None = None
) -> Policy:
    """Validate a policy document already read from TOML (e.g. a regional policy with an authority's
    overrides merged in, ``core.policy``) and turn it into a ``Policy``; PolicyError names the field."""
    try:
        spec = PolicySpec.model_validate(raw, context={"kinds": kinds or ANY_PAYLOAD_KINDS})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(first["loc"])
        detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PolicyError(detail, record=source, field=where) from exc
    seen: set[str] = set()
    for i, a in enumerate(spec.agreement):
        if a.name in seen:  # named by its place, so the reader finds the second one
            raise PolicyError(
                f"agreement[{i}].name: agreement name {a.name!r} appears twice",
                record=source,
                field=f"agreement[{i}].name",
            )
        seen.add(a.name)
    return Policy(
        version=spec.version,
        gillick_age=spec.gillick_age,
        default_recipients={k: tuple(v) for k, v in spec.default_recipients.items()},
        agreements=tuple(
            SharingAgreement(
                name=a.name,
                recipient_class=a.recipient_class,
                purpose=a.purpose,
                message_kinds=frozenset(a.message_kinds),
                article6_bases=frozenset(a.article6),
                statutory_powers=frozenset(a.statutory_powers),
                article9_conditions=frozenset(a.article9),
                released_fields=tuple(a.released_fields),
                content_level=a.content_level,
                min_age=a.min_age,
                max_age=a.max_age,
                without_recipient_key=a.without_recipient_key,
            )
            for a in spec.agreement
        ),
    )


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def _path_exists(path: str, payload_model: type[BaseModel]) -> bool:
    head, _, rest = path.partition(".")
    if head == "subject":
        return rest in ChildSubject.model_fields
    if head == "payload":
        return rest in payload_model.model_fields and rest != "kind"
    return not rest and head in Envelope.model_fields and head not in _NEVER_RELEASED


# Kinds that are recorded but never shared onward.
RECORD_ONLY_KINDS = frozenset(
    {ConsentRecord.model_fields["kind"].default, ConsentDispensation.model_fields["kind"].default}
)
