"""The consent gate's pure decision for Operation Encompass: worked cases, then properties."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from gate_pipeline import decide
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mash_broker.consent_gate import (
    BUILTIN_POLICY,
    ENCOMPASS_AGREEMENT,
    MASH_QUEUE,
    Decision,
    Policy,
    Reason,
    Verdict,
)
from mash_broker.contracts import ChildPresent, ChildSubject, EncompassNotification, Envelope

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
OCCURRED = datetime(2026, 11, 16, 21, 40, tzinfo=UTC)
KNOWN = frozenset({"900001", "900002", "100234"})
FIELDS = frozenset(ENCOMPASS_AGREEMENT.released_fields)
ENCOMPASS_BASIS: dict[str, Any] = {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"}
POSTCODE = "ZZ99 1AA"


def notification(
    *,
    urn: str | None = "900001",
    basis: dict[str, Any] | None = ENCOMPASS_BASIS,
    dob: date = date(2016, 5, 12),
    given_name: str = "Zebedee",
    family_name: str = "Quillfeather",
    occurred_at: datetime = OCCURRED,
    postcode: str | None = POSTCODE,
    summary: str = "Officers attended; the child was present and unhurt.",
    present: ChildPresent = ChildPresent.YES,
    reference: str = "EXP/2026/1001",
    message_id: uuid.UUID | None = None,
) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": message_id or uuid.uuid4(),
            "kind": "notification.encompass",
            "sender_org": "police:example",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": {"given_name": given_name, "family_name": family_name, "date_of_birth": dob},
            "lawful_basis": basis,
            "payload": {
                "kind": "notification.encompass",
                "police_reference": reference,
                "force": "example",
                "occurred_at": occurred_at,
                "reported_at": occurred_at + timedelta(minutes=15),
                "child_present": present,
                "school_urn": urn,
                "home_postcode": postcode,
                "summary_for_school": summary,
            },
        }
    )


def parts(message: Envelope) -> tuple[ChildSubject, EncompassNotification]:
    assert message.subject is not None
    assert isinstance(message.payload, EncompassNotification)
    return message.subject, message.payload


def run(message: Envelope, known: frozenset[str] = KNOWN, policy: Policy = BUILTIN_POLICY) -> Decision:
    return decide(message, known_schools=known, policy=policy, now=NOW)


def released_text(decision: Decision) -> str:
    return json.dumps([r.released for r in decision.releases], sort_keys=True)


# -- worked cases ------------------------------------------------------------------------------


def test_statutory_duty_shares_with_the_childs_school_without_consent() -> None:
    message = notification()
    assert message.consent_ref is None
    decision = run(message)
    assert decision.verdict is Verdict.SHARE
    assert decision.reasons == (Reason.STATUTORY_DUTY, Reason.MINIMUM_FIELDS_RELEASED)
    assert decision.message_id == message.message_id
    assert decision.policy_version == BUILTIN_POLICY.version
    assert decision.decided_at == NOW
    assert decision.refer_to is None
    [release] = decision.releases
    assert release.recipient == "school:900001"
    assert release.agreement == ENCOMPASS_AGREEMENT.name
    assert release.purpose == "operation_encompass"
    assert any("without parental consent" in line for line in decision.trace)


def test_released_fields_are_exactly_the_agreements_fields_with_this_childs_values() -> None:
    decision = run(notification())
    [release] = decision.releases
    assert release.released == {
        "subject.given_name": "Zebedee",
        "subject.family_name": "Quillfeather",
        "subject.date_of_birth": "2016-05-12",
        "payload.police_reference": "EXP/2026/1001",
        "payload.occurred_at": "2026-11-16T21:40:00Z",
        "payload.child_present": "yes",
        "payload.summary_for_school": "Officers attended; the child was present and unhurt.",
    }
    assert set(release.released) == FIELDS


def test_home_postcode_and_school_urn_are_never_released() -> None:
    decision = run(notification())
    [release] = decision.releases
    assert "payload.home_postcode" not in release.released
    assert "payload.school_urn" not in release.released
    assert POSTCODE not in released_text(decision)
    assert "900001" not in released_text(decision)


def test_each_decision_concerns_only_its_own_child() -> None:
    siblings = [
        notification(given_name="Ada", urn="900001", dob=date(2015, 1, 2)),
        notification(given_name="Bea", urn="900002", dob=date(2018, 3, 4)),
    ]
    for child, other in (siblings, siblings[::-1]):
        (subject, payload), (other_subject, other_payload) = parts(child), parts(other)
        [release] = run(child).releases
        assert release.recipient == f"school:{payload.school_urn}"
        assert release.released["subject.given_name"] == subject.given_name
        assert release.released["subject.date_of_birth"] == subject.date_of_birth.isoformat()
        text = json.dumps(release.released)
        assert other_subject.given_name not in text
        assert other_subject.date_of_birth.isoformat() not in text
        assert str(other_payload.school_urn) not in text


def test_no_lawful_basis_withholds_and_releases_nothing() -> None:
    decision = run(notification(basis=None))
    assert decision.verdict is Verdict.WITHHOLD
    assert decision.reasons == (Reason.NO_LAWFUL_BASIS,)
    assert decision.releases == ()
    assert decision.refer_to is None


@pytest.mark.parametrize(
    ("basis", "reason"),
    [
        ({"article6": "consent"}, Reason.BASIS_NOT_IN_AGREEMENT),
        ({"article6": "consent", "statutory_power": "encompass_duty_vpa_2024"}, Reason.BASIS_NOT_IN_AGREEMENT),
        ({"article6": "vital_interests", "statutory_power": "encompass_duty_vpa_2024"}, Reason.BASIS_NOT_IN_AGREEMENT),
        ({"article6": "legal_obligation"}, Reason.STATUTORY_POWER_NOT_IN_AGREEMENT),
        (
            {"article6": "public_task", "statutory_power": "children_act_1989_s47"},
            Reason.STATUTORY_POWER_NOT_IN_AGREEMENT,
        ),
    ],
    ids=["consent", "consent+duty", "vital_interests", "no_statutory_power", "other_power"],
)
def test_basis_the_agreement_does_not_accept_withholds(basis: dict[str, Any], reason: Reason) -> None:
    decision = run(notification(basis=basis))
    assert decision.verdict is Verdict.WITHHOLD
    assert decision.reasons == (reason,)
    assert decision.releases == ()


def test_public_task_under_the_encompass_duty_is_accepted() -> None:
    basis = {"article6": "public_task", "statutory_power": "encompass_duty_vpa_2024"}
    assert run(notification(basis=basis)).verdict is Verdict.SHARE


def test_kind_without_an_agreement_withholds() -> None:
    contact = Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "contact",
            "sender_org": "school:900001",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"},
            "lawful_basis": {"article6": "public_task", "statutory_power": "children_act_2004_s11"},
            "payload": {
                "kind": "contact",
                "referrer_name": "A Teacher",
                "referrer_role": "DSL",
                "what_happened": "Disclosure.",
                "worried_about": "Neglect.",
                "consent_sought": False,
            },
        }
    )
    decision = run(contact)
    assert decision.verdict is Verdict.WITHHOLD
    assert decision.reasons == (Reason.NO_AGREEMENT_FOR_KIND,)
    assert decision.releases == ()


def test_blank_urn_refers_to_the_mash() -> None:
    decision = run(notification(urn=None))
    assert decision.verdict is Verdict.REFER
    assert decision.refer_to == MASH_QUEUE == "mash"
    assert decision.reasons == (Reason.STATUTORY_DUTY, Reason.SCHOOL_NOT_GIVEN)
    assert decision.releases == ()


def test_urn_not_in_the_directory_refers_to_the_mash() -> None:
    decision = run(notification(urn="123456"))
    assert decision.verdict is Verdict.REFER
    assert decision.refer_to == MASH_QUEUE
    assert decision.reasons == (Reason.STATUTORY_DUTY, Reason.SCHOOL_NOT_IN_DIRECTORY)
    assert decision.releases == ()


def test_empty_directory_refers_every_school() -> None:
    assert run(notification(), known=frozenset()).verdict is Verdict.REFER


@pytest.mark.parametrize(
    ("dob", "verdict"),
    [
        (date(2008, 11, 16), Verdict.WITHHOLD),  # 18 on the incident day
        (date(2008, 11, 17), Verdict.SHARE),  # 18 the day after
        (date(1990, 1, 1), Verdict.WITHHOLD),
        (date(2026, 11, 16), Verdict.SHARE),  # born that day
    ],
)
def test_subject_18_or_over_on_the_incident_day_is_withheld(dob: date, verdict: Verdict) -> None:
    decision = run(notification(dob=dob))
    assert decision.verdict is verdict
    if verdict is Verdict.WITHHOLD:
        assert decision.reasons == (Reason.SUBJECT_NOT_A_CHILD,)
        assert decision.releases == ()


def test_leap_day_birthday_turns_18_on_1_march() -> None:
    dob = date(2008, 2, 29)
    on_28_feb = datetime(2026, 2, 28, 12, tzinfo=UTC)
    on_1_mar = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert run(notification(dob=dob, occurred_at=on_28_feb)).verdict is Verdict.SHARE
    assert run(notification(dob=dob, occurred_at=on_1_mar)).verdict is Verdict.WITHHOLD


def test_no_lawful_basis_is_checked_before_anything_else() -> None:
    decision = run(notification(basis=None, urn=None, dob=date(1990, 1, 1)))
    assert decision.reasons == (Reason.NO_LAWFUL_BASIS,)


def test_policy_without_agreements_shares_nothing() -> None:
    decision = run(notification(), policy=Policy(version="empty", agreements=()))
    assert decision.verdict is Verdict.WITHHOLD
    assert decision.reasons == (Reason.NO_AGREEMENT_FOR_KIND,)
    assert decision.policy_version == "empty"


def test_decision_records_the_now_it_was_given_not_the_wall_clock() -> None:
    message = notification()
    later = NOW + timedelta(days=400)
    assert decide(message, known_schools=KNOWN, policy=BUILTIN_POLICY, now=later).decided_at == later


# -- properties --------------------------------------------------------------------------------

names = st.text(st.characters(categories=["Lu", "Ll"]), min_size=1, max_size=30)
other_urns = st.from_regex(r"[0-9]{6}", fullmatch=True).filter(lambda u: u not in KNOWN)
encompass_bases = st.fixed_dictionaries(
    {
        "article6": st.sampled_from(["legal_obligation", "public_task"]),
        "statutory_power": st.just("encompass_duty_vpa_2024"),
    }
)
other_bases = st.fixed_dictionaries(
    {"article6": st.sampled_from(["consent", "vital_interests", "legal_obligation", "public_task"])},
    optional={
        "statutory_power": st.sampled_from(
            ["children_act_1989_s47", "children_act_1989_s17", "children_act_2004_s10", "children_act_2004_s11"]
        ),
        "article9": st.sampled_from(["dpa2018_sch1_para18", "dpa2018_sch1_para2"]),
    },
)
URNS = {"known": st.sampled_from(sorted(KNOWN)), "other": other_urns, "none": st.none()}
BASES = {"encompass": encompass_bases, "other": other_bases, "none": st.none()}
# Hypothesis takes naive bounds; the timezones strategy makes every drawn value aware.
occurred_times = st.datetimes(
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
wall_clocks = st.datetimes(
    min_value=datetime(1980, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
postcodes = st.one_of(st.none(), st.from_regex(r"[A-Z]{1,2}[0-9]{1,2} [0-9][A-Z]{2}", fullmatch=True))
summaries = st.text(st.characters(categories=["Lu", "Ll", "Zs"]), max_size=200)


@st.composite
def notifications(draw: st.DrawFn) -> Envelope:
    # Branches drawn with sampled_from (uniform), weighted towards the sharing path, so that every
    # rule is reached often; one_of and integers favour their first branch and small values.
    occurred = draw(occurred_times)
    years = draw(st.sampled_from(range(21)))
    dob = occurred.date() - timedelta(days=365 * years + draw(st.integers(0, 364)))
    urn = draw(st.sampled_from(["known", "known", "known", "other", "none"]))
    basis = draw(st.sampled_from(["encompass", "encompass", "other", "none"]))
    return notification(
        urn=draw(URNS[urn]),
        basis=draw(BASES[basis]),
        dob=dob,
        given_name=draw(names),
        family_name=draw(names),
        occurred_at=occurred,
        postcode=draw(postcodes),
        summary=draw(summaries),
        present=draw(st.sampled_from(list(ChildPresent))),
        message_id=draw(st.uuids()),
    )


def _accepted(message: Envelope) -> bool:
    basis = message.lawful_basis
    return (
        basis is not None
        and basis.article6.value in {"legal_obligation", "public_task"}
        and basis.statutory_power is not None
        and basis.statutory_power.value == "encompass_duty_vpa_2024"
    )


@settings(max_examples=150, deadline=None)
@given(notifications())
def test_withheld_or_referred_means_nothing_released(message: Envelope) -> None:
    decision = run(message)
    if decision.verdict is not Verdict.SHARE:
        assert decision.releases == ()
    else:
        assert len(decision.releases) == 1
    assert (decision.refer_to is not None) == (decision.verdict is Verdict.REFER)


@settings(max_examples=150, deadline=None)
@given(notifications())
def test_released_keys_are_within_the_agreements_fields(message: Envelope) -> None:
    subject, payload = parts(message)
    decision = run(message)
    for release in decision.releases:
        assert set(release.released) <= FIELDS
        assert "payload.home_postcode" not in release.released
        assert "payload.school_urn" not in release.released
        if payload.home_postcode:
            assert payload.home_postcode not in released_text(decision)
        assert release.recipient == f"school:{payload.school_urn}"
        assert release.released["subject.given_name"] == subject.given_name


@settings(max_examples=150, deadline=None)
@given(notifications())
def test_nothing_is_shared_without_an_accepted_lawful_basis(message: Envelope) -> None:
    decision = run(message)
    if message.lawful_basis is None:
        assert decision.verdict is Verdict.WITHHOLD
        assert decision.reasons == (Reason.NO_LAWFUL_BASIS,)
    if decision.verdict is Verdict.SHARE:
        assert _accepted(message)
        assert Reason.STATUTORY_DUTY in decision.reasons


@settings(max_examples=150, deadline=None)
@given(notifications())
def test_verdict_follows_the_rules_in_order(message: Envelope) -> None:
    subject, payload = parts(message)
    decision = run(message)
    adult = _age(subject.date_of_birth, payload.occurred_at.date()) >= 18
    if message.lawful_basis is None:
        expected = (Verdict.WITHHOLD, Reason.NO_LAWFUL_BASIS)
    elif message.lawful_basis.article6.value not in {"legal_obligation", "public_task"}:
        expected = (Verdict.WITHHOLD, Reason.BASIS_NOT_IN_AGREEMENT)
    elif not _accepted(message):
        expected = (Verdict.WITHHOLD, Reason.STATUTORY_POWER_NOT_IN_AGREEMENT)
    elif adult:
        expected = (Verdict.WITHHOLD, Reason.SUBJECT_NOT_A_CHILD)
    elif payload.school_urn is None:
        expected = (Verdict.REFER, Reason.SCHOOL_NOT_GIVEN)
    elif payload.school_urn not in KNOWN:
        expected = (Verdict.REFER, Reason.SCHOOL_NOT_IN_DIRECTORY)
    else:
        expected = (Verdict.SHARE, Reason.MINIMUM_FIELDS_RELEASED)
    event(f"{expected[0].value}: {expected[1].value}")
    assert (decision.verdict, decision.reasons[-1]) == expected


@settings(max_examples=100, deadline=None)
@given(notifications(), wall_clocks)
def test_decide_is_a_pure_function_of_its_inputs(message: Envelope, wall_clock: datetime) -> None:
    before = message.model_dump_json()
    first = run(message)
    # Same inputs, another wall clock, a copy of the message and of the directory: the same decision.
    with time_machine.travel(wall_clock, tick=False):
        again = decide(
            Envelope.model_validate_json(message.model_dump_json()),
            known_schools=set(KNOWN),
            policy=BUILTIN_POLICY,
            now=NOW,
        )
    assert again == first
    assert message.model_dump_json() == before


def _age(dob: date, day: date) -> int:
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))
