"""The gate's decision: a pure function of the message, what is known of the child's consent, the
routing the agencies derived (``Route``, ``PreCheck``), the policy and ``now``. No agency is named here.
The numbered rules are DOMAIN.md's "Consent and lawful basis"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import JsonValue

from mash_broker.consent_gate.agreements import Policy, SharingAgreement
from mash_broker.consent_gate.decision import ADVICE_QUEUE, MASH_QUEUE, Decision, Reason, Refusal, Release, Verdict
from mash_broker.consent_gate.facts import ConsentFacts, ConsentState, age_on
from mash_broker.consent_gate.routing import NO_ROUTE, PreCheck, Route
from mash_broker.contracts import Article6Basis, Article9Condition, Envelope, StatutoryPower

NO_FACTS = ConsentFacts()
_STATE_REASON = {
    ConsentState.REFUSED: Reason.CONSENT_REFUSED,
    ConsentState.WITHDRAWN: Reason.CONSENT_WITHDRAWN,
    ConsentState.EXPIRED: Reason.CONSENT_EXPIRED,
    ConsentState.NONE: Reason.NO_CONSENT_RECORDED,
}


def decide(
    message: Envelope,
    *,
    policy: Policy,
    now: datetime,
    facts: ConsentFacts = NO_FACTS,
    route: Route = NO_ROUTE,
    pre_check: PreCheck | None = None,
) -> Decision:
    """Decide who, if anyone, receives ``message`` and exactly which fields. ``route`` adds the recipients
    the agencies' directories derive (and the routing problems a person must resolve); ``pre_check`` is an
    agency's refusal before any agreement is tried."""
    trace: list[str] = [f"policy {policy.version}; message kind {message.kind}"]

    def done(verdict: Verdict, *reasons: Reason, **kw: Any) -> Decision:
        return Decision(
            message_id=message.message_id,
            verdict=verdict,
            reasons=reasons,
            policy_version=policy.version,
            decided_at=now,
            trace=tuple(trace),
            **kw,
        )

    basis = message.lawful_basis
    if basis is None:
        trace.append("rule 1 (a lawful basis is recorded): failed; nothing is shared")
        return done(Verdict.WITHHOLD, Reason.NO_LAWFUL_BASIS)
    trace.append(f"rule 1 (a lawful basis is recorded): held, Article 6 {basis.article6.value}")
    if pre_check is not None:
        trace.append(pre_check.why)
        return done(Verdict.WITHHOLD, pre_check.reason)
    agreements = policy.for_kind(message.kind)
    if not agreements:
        trace.append("agreements: none covers this kind of message")
        return done(Verdict.WITHHOLD, Reason.NO_AGREEMENT_FOR_KIND)
    if not any(basis.article6 in a.article6_bases for a in agreements):
        trace.append("agreements: none accepts this Article 6 basis for this kind")
        return done(Verdict.WITHHOLD, Reason.BASIS_NOT_IN_AGREEMENT)
    if not any(_power_ok(message, a) for a in agreements if basis.article6 in a.article6_bases):
        trace.append(
            "rule 4: no agreement for this kind accepts the statutory power given "
            f"({basis.statutory_power.value if basis.statutory_power else 'none'})"
        )
        return done(Verdict.WITHHOLD, Reason.STATUTORY_POWER_NOT_IN_AGREEMENT)
    age = subject_age(message, now)
    if age is not None and age >= 18:
        trace.append(f"the subject is {age}: not a child; adults at risk are outside this gate")
        return done(Verdict.WITHHOLD, Reason.SUBJECT_NOT_A_CHILD)

    named = list(message.recipients) or list(policy.default_recipients.get(message.kind, ()))
    recipients = [*route.first, *named, *route.also]
    routing = list(route.problems)
    trace.extend(route.trace)
    if not recipients and not routing:
        trace.append("recipient: none named and none derived")
        return done(Verdict.WITHHOLD, Reason.NO_RECIPIENT)

    releases: list[Release] = []
    refusals: list[Refusal] = []
    for recipient in dict.fromkeys(recipients):
        outcome = _for_recipient(message, recipient, policy, facts, now, age, trace)
        (releases if isinstance(outcome, Release) else refusals).append(outcome)  # type: ignore[arg-type]

    advice = next((r for r in refusals if r.verdict is Verdict.REFER), None)
    refer_to = MASH_QUEUE if routing else (ADVICE_QUEUE if advice else None)
    extra = {
        "not_released": tuple(refusals),
        "basis_used": basis.article6.value,
        "consent_id": next((r.consent_id for r in releases if r.consent_id), None),
    }
    if releases:
        reasons = _unique(
            *[list(r.reasons) for r in releases],
            routing,
            *[list(r.reasons) for r in refusals if r.verdict is Verdict.REFER],
        )
        return done(
            Verdict.SHARE,
            *reasons,
            releases=tuple(releases),
            refer_to=refer_to,
            routing_problems=route.problems,
            **extra,
        )
    if routing:
        return done(
            Verdict.REFER,
            Reason.STATUTORY_DUTY,
            *routing,
            refer_to=MASH_QUEUE,
            routing_problems=route.problems,
            **extra,
        )
    if advice:
        return done(Verdict.REFER, *advice.reasons, refer_to=ADVICE_QUEUE, **extra)
    return done(Verdict.WITHHOLD, *refusals[0].reasons, **extra)


def _for_recipient(
    message: Envelope,
    recipient: str,
    policy: Policy,
    facts: ConsentFacts,
    now: datetime,
    age: int | None,
    trace: list[str],
) -> Release | Refusal:
    basis = message.lawful_basis
    assert basis is not None
    reasons: list[Reason] = []

    def refuse(verdict: Verdict, reason: Reason, why: str) -> Refusal:
        trace.append(f"{recipient}: {why}; not released")
        return Refusal(recipient, verdict, (*reasons, reason))

    candidates = policy.for_recipient(recipient, message.kind, message.purpose)
    if not candidates:
        return refuse(Verdict.WITHHOLD, Reason.NO_AGREEMENT_FOR_RECIPIENT, "no agreement for this recipient")
    agreement = next((a for a in candidates if basis.article6 in a.article6_bases), None)
    if agreement is None:
        return refuse(
            Verdict.WITHHOLD,
            Reason.BASIS_NOT_IN_AGREEMENT,
            f"agreement {candidates[0].name} does not accept {basis.article6.value}",
        )
    trace.append(f"{recipient}: agreement {agreement.name} (purpose {agreement.purpose})")
    if age is not None and not _age_in(agreement, age):
        return refuse(Verdict.WITHHOLD, Reason.OUTSIDE_AGREEMENT_AGE, f"child aged {age} is outside it")
    if agreement.recipient_class == "family" and (message.do_not_notify_subject or facts.do_not_notify(now)):
        return refuse(Verdict.WITHHOLD, Reason.DO_NOT_NOTIFY_SUBJECT, "rule 11 (do not notify the subject)")

    if message.special_category:
        if basis.article9 is None:
            if message.significant_harm_risk:
                return refuse(
                    Verdict.REFER,
                    Reason.ARTICLE9_UNCERTAIN_SAFEGUARDING,
                    "rule 2 (Article 9 condition): none, but a safeguarding concern; rule 10: ask a person",
                )
            return refuse(Verdict.WITHHOLD, Reason.NO_ARTICLE9_CONDITION, "rule 2 (Article 9 condition): none")
        if basis.article9 not in agreement.article9_conditions:
            return refuse(
                Verdict.WITHHOLD,
                Reason.ARTICLE9_NOT_IN_AGREEMENT,
                f"rule 2: {basis.article9.value} is not accepted by the agreement",
            )
        if basis.article9 is Article9Condition.SAFEGUARDING_PARA_18:
            dispensation = facts.dispensation(recipient, agreement.purpose, now)
            if basis.consent_not_used_because is None and dispensation is None:
                return refuse(
                    Verdict.REFER,
                    Reason.PARA18_REASON_NOT_RECORDED,
                    "rule 3 (para 18): why consent was not used is not recorded",
                )
            why = basis.consent_not_used_because or (dispensation.reason if dispensation else None)
            trace.append(f"{recipient}: rule 3 (para 18) held: consent not used because {why}")
            reasons.append(Reason.PARA18_REASON_RECORDED)

    parental = facts.parental(recipient, agreement.purpose, now)
    child = facts.childs_view(recipient, agreement.purpose, now)
    consent_id = None
    if basis.article6 is Article6Basis.CONSENT:
        if parental.state is not ConsentState.GIVEN:
            return refuse(
                Verdict.WITHHOLD,
                _STATE_REASON[parental.state],
                f"rule 6 (consent as the basis): {parental.state.value}",
            )
        assert parental.record is not None
        consent_id = parental.record.consent_id
        trace.append(
            f"{recipient}: rule 6 held: consent {consent_id} covers it until "
            f"{parental.record.valid_until or 'withdrawn'}"
        )
        reasons.append(Reason.CONSENT_GIVEN)
        if (
            child.state in (ConsentState.REFUSED, ConsentState.WITHDRAWN)
            and age is not None
            and age >= policy.gillick_age
        ):
            return refuse(Verdict.REFER, Reason.CHILD_OBJECTS, f"rule 7: the child ({age}) objects")
    else:
        if not _power_ok(message, agreement):
            return refuse(
                Verdict.WITHHOLD,
                Reason.STATUTORY_POWER_NOT_IN_AGREEMENT,
                f"rule 4: statutory power {basis.statutory_power} not accepted",
            )
        reasons.append(Reason.STATUTORY_DUTY)
        power = basis.statutory_power.value if basis.statutory_power else basis.article6.value
        trace.append(f"{recipient}: rule 4 (statutory function) held: {power}, without parental consent")
        if (
            parental.state in (ConsentState.REFUSED, ConsentState.WITHDRAWN)
            and basis.statutory_power is not StatutoryPower.ENCOMPASS_DUTY
        ):
            if not message.significant_harm_risk:
                return refuse(
                    Verdict.WITHHOLD,
                    _STATE_REASON[parental.state],
                    f"rule 5: consent {parental.state.value} and no risk of significant harm recorded",
                )
            if not (basis.rationale and basis.decided_by):
                return refuse(
                    Verdict.REFER,
                    Reason.REFUSAL_RATIONALE_REQUIRED,
                    "rule 5: overriding a refusal needs a recorded rationale and decision maker",
                )
            trace.append(
                f"{recipient}: rule 5 held: refusal overridden for risk of significant harm, "
                f"decided by {basis.decided_by}"
            )
            reasons.append(Reason.REFUSAL_OVERRIDDEN_SIGNIFICANT_HARM)
        if child.state in (ConsentState.REFUSED, ConsentState.WITHDRAWN):
            trace.append(f"{recipient}: rule 7: the child's objection is recorded; the duty overrides it")
            reasons.append(Reason.CHILD_VIEW_RECORDED)

    released = project(message, agreement.released_fields)
    trace.append(f"{recipient}: rule 8 (share the minimum): released {len(released)} fields: " + ", ".join(released))
    return Release(
        recipient=recipient,
        agreement=agreement.name,
        purpose=agreement.purpose,
        content_level=agreement.content_level,
        released=released,
        consent_id=consent_id,
        reasons=(*reasons, Reason.MINIMUM_FIELDS_RELEASED),
    )


def project(message: Envelope, fields: tuple[str, ...]) -> dict[str, JsonValue]:
    """The released projection: only the named dotted paths, as JSON values."""
    doc = message.model_dump(mode="json")
    out: dict[str, JsonValue] = {}
    for path in fields:
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            out[path] = node
    return out


def subject_age(message: Envelope, now: datetime) -> int | None:
    """The child's age when what the message reports happened (its payload's ``occurred_at``), else now."""
    if message.subject is None:
        return None
    occurred = getattr(message.payload, "occurred_at", None)
    on = occurred if isinstance(occurred, datetime) else now
    return age_on(message.subject.date_of_birth, on.date())


def _power_ok(message: Envelope, agreement: SharingAgreement) -> bool:
    """Consent needs no statutory power; otherwise the agreement's powers, if it names any, must include it."""
    basis = message.lawful_basis
    assert basis is not None
    return (
        basis.article6 is Article6Basis.CONSENT
        or not agreement.statutory_powers
        or basis.statutory_power in agreement.statutory_powers
    )


def _age_in(agreement: SharingAgreement, age: int) -> bool:
    return (agreement.min_age is None or age >= agreement.min_age) and (
        agreement.max_age is None or age <= agreement.max_age
    )


def _unique(*groups: list[Reason]) -> list[Reason]:
    return list(dict.fromkeys(r for g in groups for r in g))
