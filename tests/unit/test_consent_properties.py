"""Properties of the pure consent gate over random messages and random consent histories (hypothesis)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from consent_builders import NOW, POLICY, consent, contact, outcome, run
from hypothesis import given, settings
from hypothesis import strategies as st

from mash_broker.consent_gate import Verdict
from mash_broker.contracts import ConsentRecord, Envelope

CLASSES = ["early_help", "mash", "gp", "school", "health_visitor"]
RECIPIENTS = ["early_help:team-north", "mash:hub", "gp:A12345", "school:900001", "health_visitor:hv-1"]
PURPOSES = ["early_help", "safeguarding_screening", "safeguarding_health"]

bases = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "article6": st.sampled_from(["public_task", "legal_obligation", "vital_interests", "consent"]),
            "statutory_power": st.sampled_from(
                [
                    None,
                    "children_act_1989_s47",
                    "children_act_1989_s17",
                    "children_act_2004_s10",
                    "children_act_2004_s11",
                ]
            ),
            "article9": st.sampled_from([None, "dpa2018_sch1_para18", "dpa2018_sch1_para2"]),
            "consent_not_used_because": st.sampled_from([None, "cannot_be_given", "would_put_child_at_risk"]),
            "rationale": st.sampled_from([None, "Synthetic rationale."]),
            "decided_by": st.sampled_from([None, "Team Manager"]),
        }
    ),
)


@st.composite
def messages(draw: Any) -> Envelope:
    recipients = tuple(draw(st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True)))
    basis = draw(bases)
    age = draw(st.integers(0, 20))
    if draw(st.booleans()):
        message = contact(
            recipients=recipients,
            purpose=draw(st.sampled_from([None, *PURPOSES])),
            basis=basis or {"article6": "consent"},
            age=age,
        )
    else:
        message = outcome(
            basis=basis, special=draw(st.booleans()), harm=draw(st.booleans()), recipients=recipients, age=age
        )
    return message.model_copy(update={"lawful_basis": None}) if basis is None else message


@st.composite
def histories(draw: Any) -> list[ConsentRecord]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        status = draw(st.sampled_from(["given", "refused", "withdrawn", "expired"]))
        out.append(
            consent(
                status,
                by=draw(st.sampled_from(["parent", "carer", "child"])),
                recipients=tuple(draw(st.lists(st.sampled_from(CLASSES), min_size=1, max_size=3, unique=True))),
                purposes=tuple(draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True))),
                recorded=NOW - timedelta(hours=draw(st.integers(1, 200))),
                until=draw(st.sampled_from([None, NOW + timedelta(days=30), NOW - timedelta(minutes=5)]))
                if status == "given"
                else None,
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(messages(), histories())
def test_withheld_or_referred_means_nothing_released(message: Envelope, history: list[ConsentRecord]) -> None:
    decision = run(message, *history)
    if decision.verdict is not Verdict.SHARE:
        assert decision.releases == ()
    else:
        assert decision.releases


@settings(max_examples=300, deadline=None)
@given(messages(), histories())
def test_released_fields_stay_within_the_agreement_for_that_recipient_and_purpose(
    message: Envelope, history: list[ConsentRecord]
) -> None:
    for release in run(message, *history).releases:
        [agreement] = [a for a in POLICY.agreements if a.name == release.agreement]
        assert agreement.recipient_class == release.recipient.split(":")[0]
        assert agreement.purpose == release.purpose
        assert message.purpose in (None, agreement.purpose)
        assert set(release.released) <= set(agreement.released_fields)


@settings(max_examples=300, deadline=None)
@given(messages(), histories())
def test_nothing_is_shared_without_a_lawful_basis(message: Envelope, history: list[ConsentRecord]) -> None:
    decision = run(message, *history)
    if message.lawful_basis is None:
        assert decision.verdict is Verdict.WITHHOLD
        assert decision.releases == ()
    for release in decision.releases:
        # a consent-based release always names the consent it rests on
        assert (release.consent_id is not None) == (message.lawful_basis.article6.value == "consent")  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(messages(), histories(), st.integers(1, 100))
def test_a_withdrawal_recorded_after_a_consent_always_wins(
    message: Envelope, history: list[ConsentRecord], after_hours: int
) -> None:
    given_ = [r for r in history if r.status.value == "given" and r.given_by != "child"]
    if not given_:
        return
    latest = max(r.recorded_at for r in history)
    withdrawal = consent(
        "withdrawn",
        by="parent",
        recipients=tuple(CLASSES),
        purposes=tuple(PURPOSES),
        recorded=latest + timedelta(minutes=1),
    )
    decided_at = max(NOW, withdrawal.recorded_at) + timedelta(hours=after_hours)
    decision = run(message, *history, withdrawal, now=decided_at)
    assert all(r.consent_id is None for r in decision.releases)


@settings(max_examples=200, deadline=None)
@given(messages(), histories())
def test_the_decision_is_a_pure_function_of_its_inputs(message: Envelope, history: list[ConsentRecord]) -> None:
    before = (message.model_dump_json(), [r.model_dump_json() for r in history])
    first = run(message, *history)
    second = run(copy.deepcopy(message), *copy.deepcopy(history))
    assert first == second
    assert (message.model_dump_json(), [r.model_dump_json() for r in history]) == before
