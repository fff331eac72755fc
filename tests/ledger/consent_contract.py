"""Consent records through the gate service, over a real ledger: run on every storage backend.

``ConsentServiceContract`` is abstract like ``LedgerContract``: a backend's test class inherits it
and provides the ``ledger`` fixture. The messages and the policy are the consent-engine tests'
(``tests/unit/consent_builders.py``): an early-help referral that rests on consent, under the
shipped ``mash_broker/defaults/policy.toml``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from consent_builders import CHILD, NOW, POLICY, consent, contact, dispensation

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import Reason, Verdict
from mash_broker.contracts import ConsentDispensation, ConsentRecord, Envelope, PolicyError, topics
from mash_broker.core.clocks import load_calendar
from mash_broker.core.consent_service import facts_for
from mash_broker.core.explain import explain
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import outbox_id
from mash_broker.core.policy import DEFAULT_POLICY, LoadedPolicy, load_policy, record_policy
from mash_broker.storage import Ledger

SETTLE = timedelta(seconds=30)
EARLY_HELP = "early_help:team-north"


class Clock:
    """The gate's clock, moved on by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def consent_envelope(record: ConsentRecord | ConsentDispensation, *, sender: str = "school:900001") -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": record.kind,
            "sender_org": sender,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "payload": record.model_dump(mode="json"),
        }
    )


def wire(env: Envelope) -> bytes:
    return env.model_dump_json().encode()


class ConsentGate:
    """The gate under the shipped policy with a test clock, holding consent-based shares ``settle``.
    Subclasses provide ``ledger``."""

    settle = SETTLE

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock(NOW)

    @pytest.fixture
    def gate(self, ledger: Ledger, clock: Clock) -> GateContext:
        return GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=clock,
            consent_settle=self.settle,
        )


class ConsentServiceContract(ConsentGate):
    """Consent given, withdrawn, malformed, and rebuilt from the ledger. Subclasses provide ``ledger``."""

    async def test_a_share_on_consent_is_held_for_the_settle_window_then_released(
        self, gate: GateContext, clock: Clock
    ) -> None:
        given = consent()
        assert await process_inbound(gate, wire(consent_envelope(given)), topics.CONSENT_RECORDS) == "given"
        referral = contact()
        assert await process_inbound(gate, wire(referral), EDUCATION_INBOUND) == "share"

        [delivery] = await gate.ledger.deliveries_of(str(referral.message_id))
        assert (delivery.recipient, delivery.consent_id) == (EARLY_HELP, str(given.consent_id))
        topic = REGISTRY.delivery_topic(EARLY_HELP)
        held = [r for r in await gate.ledger.pending_outbox(now=clock.at) if r.topic == topic]
        assert held == [], "a share resting on consent waits out the settle window"
        released = [r for r in await gate.ledger.pending_outbox(now=clock.at + SETTLE) if r.topic == topic]
        assert [r.outbox_id for r in released] == [str(outbox_id(uuid.UUID(delivery.delivery_id), topic))]

    async def test_a_withdrawal_stops_a_queued_share_and_records_why(self, gate: GateContext, clock: Clock) -> None:
        given = consent()
        await process_inbound(gate, wire(consent_envelope(given)), topics.CONSENT_RECORDS)
        referral = contact()
        assert await process_inbound(gate, wire(referral), EDUCATION_INBOUND) == "share"

        clock.at = NOW + SETTLE / 3  # inside the window: the share is still in the outbox
        withdrawn = consent("withdrawn", consent_id=given.consent_id, recorded=clock.at)
        assert await process_inbound(gate, wire(consent_envelope(withdrawn)), topics.CONSENT_RECORDS) == "withdrawn"

        ledger = gate.ledger
        later = await ledger.pending_outbox(now=NOW + timedelta(days=1))
        assert [r for r in later if r.topic == REGISTRY.delivery_topic(EARLY_HELP)] == [], "never published"
        row = await ledger.message(str(referral.message_id))
        assert row is not None
        assert (row.verdict, row.reasons) == ("withhold", (Reason.CONSENT_WITHDRAWN.value,))
        [delivery] = await ledger.deliveries_of(str(referral.message_id))
        assert delivery.withdrawn_at is not None
        [stopped] = [e for e in await ledger.events_of(str(referral.message_id)) if e.event_type == "share.withdrawn"]
        assert stopped.detail["reason"] == Reason.CONSENT_WITHDRAWN.value
        assert stopped.detail["consent_id"] == str(given.consent_id)

        text = "\n".join(await explain(ledger, str(referral.message_id)))
        assert f"withdrawn from {EARLY_HELP}" in text
        assert "withdrawn before it was sent (consent withdrawn)" in text

    async def test_withdrawing_one_of_two_consents_stops_only_the_share_that_relied_on_it(
        self, gate: GateContext, clock: Clock
    ) -> None:
        south = "early_help:team-south"
        to_early_help, to_south = consent(recipients=(EARLY_HELP,)), consent(recipients=(south,))
        for record in (to_early_help, to_south):
            await process_inbound(gate, wire(consent_envelope(record)), topics.CONSENT_RECORDS)
        referral = contact(recipients=(EARLY_HELP, south))
        assert await process_inbound(gate, wire(referral), EDUCATION_INBOUND) == "share"
        ledger = gate.ledger
        relied = {d.recipient: d.consent_id for d in await ledger.deliveries_of(str(referral.message_id))}
        assert relied == {EARLY_HELP: str(to_early_help.consent_id), south: str(to_south.consent_id)}

        clock.at = NOW + SETTLE / 3
        withdrawn = consent("withdrawn", consent_id=to_early_help.consent_id, recorded=clock.at)
        await process_inbound(gate, wire(consent_envelope(withdrawn)), topics.CONSENT_RECORDS)

        stopped = {
            d.recipient: d.withdrawn_at is not None for d in await ledger.deliveries_of(str(referral.message_id))
        }
        assert stopped == {EARLY_HELP: True, south: False}
        row = await ledger.message(str(referral.message_id))
        assert row is not None
        assert row.verdict == "share", "the share to the south team stands"
        assert row.reasons[-1] == Reason.CONSENT_WITHDRAWN.value
        going = [
            json.loads(r.value)["payload"]["recipient"]
            for r in await ledger.pending_outbox(now=NOW + SETTLE)
            if r.topic == REGISTRY.delivery_topic(south)
        ]
        assert going == [south]

    async def test_after_a_withdrawal_the_next_message_is_withheld(self, gate: GateContext, clock: Clock) -> None:
        given = consent()
        await process_inbound(gate, wire(consent_envelope(given)), topics.CONSENT_RECORDS)
        clock.at = NOW + timedelta(hours=1)
        withdrawn = consent("withdrawn", consent_id=given.consent_id, recorded=clock.at)
        await process_inbound(gate, wire(consent_envelope(withdrawn)), topics.CONSENT_RECORDS)

        clock.at = NOW + timedelta(hours=2)
        referral = contact()
        assert await process_inbound(gate, wire(referral), EDUCATION_INBOUND) == Verdict.WITHHOLD.value
        assert await gate.ledger.deliveries_of(str(referral.message_id)) == []
        row = await gate.ledger.message(str(referral.message_id))
        assert row is not None
        assert Reason.CONSENT_WITHDRAWN.value in row.reasons

    async def test_a_withdrawal_after_publication_leaves_the_share_on_record(
        self, gate: GateContext, clock: Clock
    ) -> None:
        given = consent()
        await process_inbound(gate, wire(consent_envelope(given)), topics.CONSENT_RECORDS)
        referral = contact()
        await process_inbound(gate, wire(referral), EDUCATION_INBOUND)
        ledger = gate.ledger
        published = await ledger.pending_outbox(now=NOW + SETTLE)
        await ledger.mark_published([r.seq for r in published], NOW + SETTLE)

        clock.at = NOW + timedelta(hours=1)
        withdrawn = consent("withdrawn", consent_id=given.consent_id, recorded=clock.at)
        await process_inbound(gate, wire(consent_envelope(withdrawn)), topics.CONSENT_RECORDS)
        row = await ledger.message(str(referral.message_id))
        assert row is not None
        assert row.verdict == "share", "what was already sent stands; the withdrawal is on record"
        [delivery] = await ledger.deliveries_of(str(referral.message_id))
        assert delivery.withdrawn_at is None
        assert [e.detail["status"] for e in await ledger.events("consent.recorded")] == ["given", "withdrawn"]

    async def test_consent_state_is_rebuilt_from_the_ledger(self, gate: GateContext) -> None:
        given, refused_elsewhere = consent(), consent("refused", recipients=("gp",), purposes=("safeguarding_health",))
        not_sought = dispensation()
        for record in (given, refused_elsewhere, not_sought):
            await process_inbound(gate, wire(consent_envelope(record)), topics.CONSENT_RECORDS)
        # Another process (a restarted gate) reads the child's state from the ledger alone.
        async with gate.ledger.reader() as tx:
            facts = await facts_for(tx, contact())
        assert [r.consent_id for r in facts.records] == [given.consent_id, refused_elsewhere.consent_id]
        assert [d.dispensation_id for d in facts.dispensations] == [not_sought.dispensation_id]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            pytest.param(lambda p: p.update(status="maybe"), "payload.consent.status", id="unknown-status"),
            pytest.param(lambda p: p.update(given_by="neighbour"), "payload.consent.given_by", id="not-a-giver"),
            pytest.param(lambda p: p.pop("recorded_by"), "payload.consent.recorded_by", id="no-evidence"),
            pytest.param(lambda p: p.update(status="given", recipients=[]), "payload.consent", id="given-to-nobody"),
            pytest.param(lambda p: p.update(valid_until="2020-01-01T00:00:00Z"), "payload.consent", id="ends-first"),
        ],
    )
    async def test_a_malformed_consent_record_is_rejected_naming_the_field_and_changes_nothing(
        self, gate: GateContext, change: Any, field: str
    ) -> None:
        given = consent()
        await process_inbound(gate, wire(consent_envelope(given)), topics.CONSENT_RECORDS)
        withdrawal = consent_envelope(consent("withdrawn", consent_id=given.consent_id))
        doc = json.loads(wire(withdrawal))
        change(doc["payload"])
        ledger = gate.ledger
        before = await ledger.count("consents")

        assert await process_inbound(gate, json.dumps(doc).encode(), topics.CONSENT_RECORDS) == "rejected"

        [item] = await ledger.quarantined()
        assert item.reason_code == "contract_invalid"
        assert field in item.detail
        assert await ledger.count("consents") == before, "the child's consent state is unchanged"
        receipts = [r for r in await ledger.pending_outbox() if r.topic == topics.receipts_topic("school:900001")]
        assert any(json.loads(r.value)["payload"]["status"] == "rejected" for r in receipts), "the sender is told"
        referral = contact()
        assert await process_inbound(gate, wire(referral), EDUCATION_INBOUND) == "share", "the consent still stands"

    async def test_each_policy_version_is_recorded_once_and_a_reused_version_is_refused(self, ledger: Ledger) -> None:
        shipped = load_policy(DEFAULT_POLICY)
        await record_policy(ledger, shipped, NOW)
        await record_policy(ledger, shipped, NOW + timedelta(days=1))  # a restart: nothing new
        [loaded] = await ledger.events("policy.loaded")
        assert loaded.detail == {"version": shipped.policy.version, "sha256": shipped.sha256, "source": "policy.toml"}

        changed_text = shipped.text.replace("max_age = 17", "max_age = 16", 1)
        assert changed_text != shipped.text
        same_version = LoadedPolicy(shipped.policy, shipped.source, changed_text)
        with pytest.raises(PolicyError) as refused:
            await record_policy(ledger, same_version, NOW + timedelta(days=2))
        assert refused.value.field == "version"

        next_text = changed_text.replace(f'version = "{shipped.policy.version}"', 'version = "next-1"', 1)
        following = LoadedPolicy(replace(shipped.policy, version="next-1"), shipped.source, next_text)
        await record_policy(ledger, following, NOW + timedelta(days=3))
        assert [e.detail["version"] for e in await ledger.events("policy.loaded")] == [shipped.policy.version, "next-1"]
