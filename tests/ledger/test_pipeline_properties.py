"""One decision pipeline (issue 10, bug 2), as a property over generated histories on a SQLite ledger:
whatever the gate decided (Encompass notifications with and without a school, at ages that route to the
health teams or not; contacts; outcomes back to their referrers; consent records and dispensations; health
teams set or not), ``what-if`` under the same policy re-decides every message the same way."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from consent_builders import CHILD, NOW, consent, contact, dispensation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mash_broker.agencies.health.routing import NO_HEALTH_TEAMS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import Envelope
from mash_broker.core.clocks import load_calendar
from mash_broker.core.explain import what_if
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.policy import DEFAULT_POLICY, load_policy
from mash_broker.storage import Ledger

from .consent_contract import consent_envelope
from .gate_contract import DIRECTORY, police_envelope, wire
from .test_health import TEAMS

SHIPPED = load_policy(DEFAULT_POLICY, REGISTRY.policy_kinds)
S17 = {"article6": "public_task", "statutory_power": "children_act_1989_s17"}

notifications = st.tuples(
    st.just("encompass"),
    st.sampled_from(["900001", "900002", "999999", ""]),  # known schools, one not in the directory, none
    st.sampled_from(["2016-05-12", "2023-02-01", "2022-06-01", "2009-06-01"]),  # school age, under five, 4, 17
    st.sampled_from(["ZZ99 1AA", ""]),
)
contacts = st.tuples(st.just("contact"), st.sampled_from(["hub", "early_help", "both"]))
outcomes = st.tuples(st.just("outcome"), st.integers(0, 5))
consents = st.tuples(st.just("consent"), st.sampled_from(["given", "withdrawn", "refused"]))
dispensations = st.tuples(st.just("dispensation"), st.booleans())
histories = st.lists(st.one_of(notifications, contacts, outcomes, consents, dispensations), min_size=1, max_size=8)


def outcome_on(contact_env: Envelope) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "outcome",
            "sender_org": "la:999",
            "correlation_id": contact_env.correlation_id,
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": S17,
            "payload": {
                "kind": "outcome",
                "contact_message_id": str(contact_env.message_id),
                "decision": "early_help",
                "rationale": "Synthetic rationale.",
                "decided_at": NOW.isoformat(),
            },
        }
    )


def build(step: tuple[Any, ...], sent_contacts: list[Envelope], consent_id: uuid.UUID) -> Envelope | None:
    kind = step[0]
    if kind == "encompass":
        _, urn, dob, postcode = step
        return police_envelope(school_urn=urn, child_dob=dob, home_postcode=postcode)
    if kind == "contact":
        to = {
            "hub": ("mash:hub",),
            "early_help": ("early_help:team-north",),
            "both": ("mash:hub", "early_help:team-north"),
        }[step[1]]
        env = contact(recipients=to) if step[1] != "hub" else contact(recipients=to, purpose=None, basis=S17)
        sent_contacts.append(env)
        return env
    if kind == "outcome":
        return outcome_on(sent_contacts[step[1] % len(sent_contacts)]) if sent_contacts else None
    if kind == "consent":
        return consent_envelope(consent(step[1], consent_id=consent_id))
    return consent_envelope(dispensation(do_not_notify=step[1], recipients=("early_help",)))


async def run_history(history: list[tuple[Any, ...]], with_teams: bool, where: Path) -> tuple[int, int, list[Any]]:
    ledger = await Ledger.open(f"sqlite+aiosqlite:///{where / 'ledger.db'}")
    clock = [NOW]
    try:
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        gate = GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=SHIPPED.policy,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=lambda: clock[0],
            directories={"health": TEAMS if with_teams else NO_HEALTH_TEAMS},
        )
        sent: list[Envelope] = []
        decided = 0
        consent_id = uuid.uuid4()
        for step in history:
            env = build(step, sent, consent_id)
            if env is None:
                continue
            clock[0] += timedelta(minutes=1)
            outcome = await process_inbound(gate, wire(env), REGISTRY.inbound_topic(env.sender_org, env.kind))
            decided += outcome in ("share", "withhold", "refer")
        total, changes = await what_if(ledger, SHIPPED.policy, registry=REGISTRY, directories=gate.directories)
        return decided, total, changes
    finally:
        await ledger.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.booleans())
def test_what_if_under_the_same_policy_reports_no_change(history: list[tuple[Any, ...]], with_teams: bool) -> None:
    with tempfile.TemporaryDirectory() as where:
        decided, total, changes = asyncio.run(run_history(history, with_teams, Path(where)))
    assert total == decided
    assert changes == []
