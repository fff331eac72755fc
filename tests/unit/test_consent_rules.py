"""One table of cases per rule in DOMAIN.md "Consent and lawful basis", each test named after its rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from consent_builders import NOW, POLICY, ROOT, consent, contact, dispensation, outcome, run

from mash_broker.consent_gate import ADVICE_QUEUE, Reason, Verdict, parse_policy


def test_rule_1_nothing_is_shared_without_a_recorded_lawful_basis() -> None:
    message = contact().model_copy(update={"lawful_basis": None})
    decision = run(message, consent())
    assert (decision.verdict, decision.reasons, decision.releases) == (Verdict.WITHHOLD, (Reason.NO_LAWFUL_BASIS,), ())


@pytest.mark.parametrize(
    ("article9", "verdict", "reason"),
    [
        (None, Verdict.WITHHOLD, Reason.NO_ARTICLE9_CONDITION),
        ("dpa2018_sch1_para2", Verdict.SHARE, Reason.MINIMUM_FIELDS_RELEASED),
    ],
    ids=["no-condition", "health-and-social-care"],
)
def test_rule_2_special_category_data_needs_an_article_9_condition(article9, verdict, reason) -> None:
    basis = {"article6": "public_task", "statutory_power": "children_act_1989_s47", "article9": article9}
    decision = run(outcome(basis=basis, special=True))
    assert decision.verdict is verdict
    assert reason in decision.reasons


def test_rule_2_a_condition_the_agreement_does_not_accept_is_withheld() -> None:
    policy = parse_policy(
        (ROOT / "mash_broker/defaults/policy.toml")
        .read_text()
        .replace(
            'article9 = ["dpa2018_sch1_para18", "dpa2018_sch1_para2"]\nreleased_fields = [\n  "subject.given_name", '
            '"subject.family_name", "subject.date_of_birth", "subject.identifiers",\n  "payload.contact_message_id"',
            'article9 = ["dpa2018_sch1_para18"]\nreleased_fields = [\n  "subject.given_name", '
            '"subject.family_name", "subject.date_of_birth", "subject.identifiers",\n  "payload.contact_message_id"',
        ),
        source="test",
    )
    basis = {"article6": "public_task", "statutory_power": "children_act_1989_s47", "article9": "dpa2018_sch1_para2"}
    decision = run(outcome(basis=basis, special=True), policy=policy)
    assert (decision.verdict, decision.reasons[-1]) == (Verdict.WITHHOLD, Reason.ARTICLE9_NOT_IN_AGREEMENT)


@pytest.mark.parametrize(
    ("because", "with_dispensation", "verdict", "reason"),
    [
        (None, False, Verdict.REFER, Reason.PARA18_REASON_NOT_RECORDED),
        ("would_put_child_at_risk", False, Verdict.SHARE, Reason.PARA18_REASON_RECORDED),
        ("cannot_reasonably_be_obtained", False, Verdict.SHARE, Reason.PARA18_REASON_RECORDED),
        (None, True, Verdict.SHARE, Reason.PARA18_REASON_RECORDED),
    ],
    ids=["reason-missing", "at-risk-if-asked", "not-obtainable", "dispensation-on-record"],
)
def test_rule_3_para_18_needs_the_reason_consent_was_not_used(because, with_dispensation, verdict, reason) -> None:
    basis = {
        "article6": "public_task",
        "statutory_power": "children_act_1989_s47",
        "article9": "dpa2018_sch1_para18",
        "consent_not_used_because": because,
    }
    records = [dispensation(recipients=("gp",))] if with_dispensation else []
    decision = run(outcome(basis=basis, special=True), *records)
    assert decision.verdict is verdict
    assert reason in decision.reasons
    if verdict is Verdict.REFER:
        assert decision.refer_to == ADVICE_QUEUE


def test_rule_3_para_18_applies_only_to_a_child() -> None:
    basis = {
        "article6": "public_task",
        "statutory_power": "children_act_1989_s47",
        "article9": "dpa2018_sch1_para18",
        "consent_not_used_because": "cannot_be_given",
    }
    decision = run(outcome(basis=basis, special=True, age=19))
    assert (decision.verdict, decision.reasons) == (Verdict.WITHHOLD, (Reason.SUBJECT_NOT_A_CHILD,))


@pytest.mark.parametrize("power", ["children_act_1989_s47", "children_act_1989_s17", "children_act_2004_s11"])
def test_rule_4_statutory_functions_give_a_basis_without_consent(power: str) -> None:
    decision = run(outcome(basis={"article6": "public_task", "statutory_power": power}))
    assert decision.verdict is Verdict.SHARE
    assert Reason.STATUTORY_DUTY in decision.reasons
    assert decision.consent_id is None


def test_rule_4_a_power_the_agreement_does_not_list_is_withheld() -> None:
    decision = run(outcome(basis={"article6": "public_task", "statutory_power": "children_act_2004_s10"}))
    assert (decision.verdict, decision.reasons) == (Verdict.WITHHOLD, (Reason.STATUTORY_POWER_NOT_IN_AGREEMENT,))


REFUSED_FOR_GP = consent("refused", recipients=("gp",), purposes=("safeguarding_health",))


@pytest.mark.parametrize(
    ("harm", "rationale", "verdict", "reason"),
    [
        (False, False, Verdict.WITHHOLD, Reason.CONSENT_REFUSED),
        (True, False, Verdict.REFER, Reason.REFUSAL_RATIONALE_REQUIRED),
        (True, True, Verdict.SHARE, Reason.REFUSAL_OVERRIDDEN_SIGNIFICANT_HARM),
    ],
    ids=["no-risk-refusal-stands", "risk-without-rationale", "risk-with-rationale-and-decider"],
)
def test_rule_5_refusal_is_overridden_only_for_significant_harm_with_a_recorded_rationale(
    harm, rationale, verdict, reason
) -> None:
    basis = {"article6": "public_task", "statutory_power": "children_act_1989_s47"}
    if rationale:
        basis |= {"rationale": "Synthetic: the child is at risk of significant harm.", "decided_by": "Team Manager"}
    decision = run(outcome(basis=basis, harm=harm), REFUSED_FOR_GP)
    assert decision.verdict is verdict
    assert reason in decision.reasons


def test_rule_5_the_encompass_duty_is_not_a_consent_question() -> None:
    from test_gate import notification  # the Encompass builder

    refused = consent("refused", recipients=("school",), purposes=("operation_encompass",))
    decision = run(notification(), refused)
    assert decision.verdict is Verdict.SHARE


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([consent()], Reason.CONSENT_GIVEN),
        ([], Reason.NO_CONSENT_RECORDED),
        ([consent(recipients=("gp",))], Reason.NO_CONSENT_RECORDED),
        ([consent(purposes=("safeguarding_health",))], Reason.NO_CONSENT_RECORDED),
        ([consent(until=NOW - timedelta(hours=1))], Reason.CONSENT_EXPIRED),
        ([consent("refused")], Reason.CONSENT_REFUSED),
        ([consent(), consent("withdrawn", recorded=NOW - timedelta(hours=2))], Reason.CONSENT_WITHDRAWN),
        ([consent("withdrawn", recorded=NOW - timedelta(days=3)), consent()], Reason.CONSENT_GIVEN),
        ([consent(recorded=NOW + timedelta(hours=1))], Reason.NO_CONSENT_RECORDED),
    ],
    ids=[
        "given",
        "none",
        "other-recipient",
        "other-purpose",
        "expired",
        "refused",
        "withdrawn-after",
        "given-again-after-withdrawal",
        "recorded-in-the-future",
    ],
)
def test_rule_6_consent_as_the_basis_must_cover_recipient_purpose_and_period(records, reason) -> None:
    decision = run(contact(), *records)
    assert reason in decision.reasons
    if reason is Reason.CONSENT_GIVEN:
        assert decision.verdict is Verdict.SHARE
        assert decision.consent_id == records[-1].consent_id
        assert decision.releases[0].consent_id == records[-1].consent_id
    else:
        assert decision.verdict is Verdict.WITHHOLD
        assert decision.releases == ()


@pytest.mark.parametrize(
    ("age", "verdict", "reason"),
    [
        (13, Verdict.REFER, Reason.CHILD_OBJECTS),
        (12, Verdict.REFER, Reason.CHILD_OBJECTS),
        (9, Verdict.SHARE, Reason.CONSENT_GIVEN),
    ],
    ids=["13-objects", "12-objects", "9-objects-below-gillick-presumption"],
)
def test_rule_7_a_child_of_sufficient_understanding_has_their_view_weighed(age, verdict, reason) -> None:
    decision = run(contact(age=age), consent(), consent("refused", by="child"))
    assert decision.verdict is verdict
    assert reason in decision.reasons


def test_rule_7_child_protection_duties_override_a_childs_refusal_and_record_it() -> None:
    child_refuses = consent("refused", by="child", recipients=("gp",), purposes=("safeguarding_health",))
    decision = run(outcome(age=14), child_refuses)
    assert decision.verdict is Verdict.SHARE
    assert Reason.CHILD_VIEW_RECORDED in decision.reasons
    assert any("rule 7" in line for line in decision.trace)


def test_rule_8_each_recipient_gets_only_its_agreements_fields() -> None:
    message = contact(recipients=("early_help:team-north", "mash:hub"), purpose=None)
    decision = run(
        message, consent(recipients=("early_help", "mash"), purposes=("early_help", "safeguarding_screening"))
    )
    by_recipient = {r.recipient: set(r.released) for r in decision.releases}
    for agreement in POLICY.agreements:
        for recipient, fields in by_recipient.items():
            if agreement.recipient_class == recipient.split(":")[0]:
                assert fields <= set(agreement.released_fields)
    assert "payload.consent_sought" not in by_recipient["early_help:team-north"]
    assert "payload.consent_sought" in by_recipient["mash:hub"]


def test_rule_8_health_visitors_get_a_summary_without_the_police_account() -> None:
    from test_gate import notification

    message = notification().model_copy(update={"recipients": ("health_visitor:hv-east",)})
    message = message.model_copy(
        update={
            "subject": message.subject.model_copy(  # type: ignore[union-attr]
                update={"date_of_birth": NOW.date().replace(year=NOW.year - 3)}
            )
        }
    )
    [visitor, _school] = sorted(run(message).releases, key=lambda r: r.recipient)
    assert visitor.recipient == "health_visitor:hv-east"
    assert "payload.summary_for_school" not in visitor.released
    assert visitor.content_level.value == "summary"


def test_rule_8_an_agreement_for_another_age_band_releases_nothing() -> None:
    from test_gate import notification

    message = notification().model_copy(update={"recipients": ("health_visitor:hv-east",)})
    decision = run(message)  # the notification's child is 10: school age, not a health visitor's
    assert [r.recipient for r in decision.releases] == ["school:900001"]
    [refusal] = decision.not_released
    assert refusal.reasons[-1] is Reason.OUTSIDE_AGREEMENT_AGE


@pytest.mark.parametrize(
    "message",
    [contact(), contact(basis={"article6": "public_task"}), outcome(), outcome(special=True)],
    ids=["consent-none-recorded", "basis-not-accepted", "share", "no-article-9"],
)
def test_rule_9_every_decision_carries_reasons_basis_policy_and_trace(message) -> None:
    decision = run(message)
    assert decision.reasons
    assert decision.policy_version == POLICY.version
    assert decision.trace
    assert decision.decided_at == NOW


def test_rule_10_an_uncertain_case_goes_to_a_person() -> None:
    basis = {"article6": "public_task", "statutory_power": "children_act_1989_s47"}
    decision = run(outcome(basis=basis, special=True, harm=True))
    assert (decision.verdict, decision.refer_to) == (Verdict.REFER, ADVICE_QUEUE)
    assert Reason.ARTICLE9_UNCERTAIN_SAFEGUARDING in decision.reasons
    assert decision.releases == ()


FAMILY_POLICY = parse_policy(
    (ROOT / "mash_broker/defaults/policy.toml").read_text()
    + """
[[agreement]]
name = "family-letter"
recipient_class = "family"
purpose = "early_help"
message_kinds = ["contact"]
article6 = ["consent", "public_task"]
released_fields = ["subject.given_name", "payload.worried_about"]
content_level = "summary"
""",
    source="test",
)


@pytest.mark.parametrize(
    ("flag", "records"),
    [(True, []), (False, [dispensation(do_not_notify=True)])],
    ids=["flag-on-the-message", "flag-on-a-dispensation"],
)
def test_rule_11_do_not_notify_the_subject_is_honoured(flag, records) -> None:
    message = contact(recipients=("family:parent-1", "early_help:team-north"), do_not_notify_subject=flag)
    decision = run(message, consent(recipients=("early_help", "family")), *records, policy=FAMILY_POLICY)
    assert [r.recipient for r in decision.releases] == ["early_help:team-north"]
    [refusal] = decision.not_released
    assert (refusal.recipient, refusal.reasons[-1]) == ("family:parent-1", Reason.DO_NOT_NOTIFY_SUBJECT)


def test_rule_11_without_the_flag_the_family_letter_goes() -> None:
    message = contact(recipients=("family:parent-1",))
    decision = run(message, consent(recipients=("family",)), policy=FAMILY_POLICY)
    assert [r.recipient for r in decision.releases] == ["family:parent-1"]
