"""Outcomes routed to the referrer (issue 5 item 2): pure, under the shipped policy."""

from __future__ import annotations

from consent_builders import KNOWN, NOW, POLICY, outcome
from gate_pipeline import decide_outcome

from mash_broker.consent_gate import Reason, Verdict
from mash_broker.consent_gate.outcomes import for_referrer, from_the_mash


def test_the_referrer_is_told_at_its_classs_level() -> None:
    for referrer, level, rationale in (
        ("school:900001", "summary", False),
        ("education:lea-999", "summary", False),
        ("police:examplepolice", "full", True),
        ("health:trust-1", "full", True),
    ):
        decision = decide_outcome(
            outcome(recipients=()), referrer=referrer, known_schools=KNOWN, policy=POLICY, now=NOW
        )
        assert decision.verdict is Verdict.SHARE
        (release,) = decision.releases
        assert (release.recipient, release.purpose, release.content_level) == (referrer, "referrer_feedback", level)
        assert ("payload.rationale" in release.released) is rationale
        assert not any(f.startswith("subject.") for f in release.released)
        assert referrer in decision.trace[1]


def test_named_recipients_keep_their_own_agreements() -> None:
    decision = decide_outcome(outcome(), referrer="school:900001", known_schools=KNOWN, policy=POLICY, now=NOW)
    assert {(r.recipient, r.purpose) for r in decision.releases} == {
        ("school:900001", "referrer_feedback"),
        ("gp:A12345", "safeguarding_health"),
    }


def test_a_referrer_class_with_no_outcome_agreement_is_not_told() -> None:
    decision = decide_outcome(
        outcome(recipients=()), referrer="early_help:team-north", known_schools=KNOWN, policy=POLICY, now=NOW
    )
    assert decision.verdict is Verdict.WITHHOLD
    assert decision.reasons == (Reason.NO_AGREEMENT_FOR_RECIPIENT,)


def test_the_referrer_is_not_added_twice_and_only_the_mash_records_outcomes() -> None:
    message = outcome(recipients=("school:900001",))
    assert for_referrer(message, "school:900001").recipients == ("school:900001",)
    assert from_the_mash(message)  # la:999
    assert not from_the_mash(message.model_copy(update={"sender_org": "school:900001"}))
    assert not from_the_mash(message.model_copy(update={"sender_org": "mash:gate"}))
    assert from_the_mash(message.model_copy(update={"sender_org": "mash:hub"}))
