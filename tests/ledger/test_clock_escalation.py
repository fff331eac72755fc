"""What a clock's warning or breach sends, on SQLite and PostgreSQL: a signed ClockAlert to whoever the
declaration escalates to, and a non-delivery report to the sender of a delivery nobody acknowledged.
Each is sent once, also by a restarted keeper, and a late receipt is still recorded.

Time is a controllable clock passed in; nothing sleeps.
"""

from __future__ import annotations

import uuid
from datetime import time, timedelta
from pathlib import Path

import pytest
from consent_builders import POLICY, contact
from signing_helpers import Keyring

from mash_broker.agencies.education import EDUCATION_DELIVERIES, EDUCATION_INBOUND
from mash_broker.agencies.education.inbox import receive_delivery
from mash_broker.agencies.police import POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import BUILTIN_POLICY
from mash_broker.contracts import AlertState, ClockAlert, Envelope, ReceiptStatus, SystemReceipt, topics
from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.escalation import NOT_ACKNOWLEDGED
from mash_broker.core.clocks.keeper import ClockKeeper, start_clock_keeper
from mash_broker.core.clocks.status import list_clocks
from mash_broker.core.explain import explain
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import GATE_ORG, encode
from mash_broker.core.settings import Settings
from mash_broker.core.signing import sign
from mash_broker.storage import Ledger, OutboxRow

from .gate_contract import DIRECTORY, NOW, PERSONAL, outbox, police_envelope, wire
from .test_clocks import CLOCKS as SHIPPED
from .test_clocks import START, Time, kinds, receive
from .test_postgres import PostgresBackend
from .test_sqlite import SqliteBackend

# Escalation and non-delivery alone: the Encompass read clock (its own test in test_clocks.py) would
# also warn on these morning notifications.
CLOCKS = tuple(c for c in SHIPPED if c.name != "encompass_read")


def signed_keeper(ledger: Ledger, at: Time, keyring: Keyring) -> ClockKeeper:
    gate = keyring.gate()
    return ClockKeeper(
        ledger,
        CLOCKS,
        load_calendar(None),
        at,
        sign=lambda env: sign(env, gate),
        delivery_topic=REGISTRY.delivery_topic,
    )


async def alerts(ledger: Ledger) -> list[tuple[OutboxRow, Envelope]]:
    rows = [r for r in await ledger.pending_outbox() if r.headers.get("kind") == "clock.alert"]
    return [(r, Envelope.model_validate_json(r.value)) for r in rows]


async def not_delivered(ledger: Ledger) -> list[Envelope]:
    envs = [Envelope.model_validate_json(r.value) for r in await outbox(ledger, POLICE_RECEIPTS)]
    return [e for e in envs if isinstance(e.payload, SystemReceipt) and e.payload.status is ReceiptStatus.NOT_DELIVERED]


class EscalationContract:
    """Subclasses provide ``ledger``."""

    @pytest.fixture
    def keyring(self, tmp_path: Path) -> Keyring:
        return Keyring(tmp_path / "keys")

    async def test_a_contact_with_no_decision_escalates_to_the_mash_manager(
        self, ledger: Ledger, keyring: Keyring
    ) -> None:
        at = Time(START)
        k = signed_keeper(ledger, at, keyring)
        ctx = GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=at,
            consent_settle=timedelta(0),
        )
        c = contact()
        await process_inbound(ctx, encode(c).encode(), EDUCATION_INBOUND)  # no outcome follows
        assert await k.tick(START + timedelta(hours=20)) == 1
        assert await k.tick(START + timedelta(hours=24, minutes=1)) == 1
        assert await k.tick(START + timedelta(hours=30)) == 0
        sent = await alerts(ledger)
        assert [(r.topic, r.key) for r, _ in sent] == [(topics.MASH_QUEUE, "mash:team-manager")] * 2
        states = []
        for row, env in sent:
            assert isinstance(env.payload, ClockAlert)
            assert env.sender_org == GATE_ORG
            assert env.correlation_id == c.correlation_id
            assert env.payload.subject_message_id == c.message_id
            assert env.payload.clock == "contact_decision"
            assert env.payload.due_at == START + timedelta(hours=24)
            assert keyring.verifier().check(env, START + timedelta(hours=25)).reason is None
            assert not any(value in row.value for value in ("Zebedee", "Quillfeather", "2016-05-12"))
            states.append(env.payload.state)
        assert states == [AlertState.WARNING, AlertState.BREACHED]
        breach = (await ledger.events("clock.breached"))[0]
        assert breach.detail["sent_to"] == topics.MASH_QUEUE
        restarted = ClockKeeper(
            ledger, CLOCKS, load_calendar(None), at, delivery_topic=REGISTRY.delivery_topic
        )  # after a restart: nothing again
        assert await restarted.tick(START + timedelta(hours=40)) == 0
        assert len(await alerts(ledger)) == 2
        (line,) = [x for x in await explain(ledger, str(c.message_id)) if x.startswith("clock ")]
        assert line.startswith("clock contact_decision")
        assert "breached" in line
        assert line.endswith("escalates to mash:team-manager")

    async def test_an_unacknowledged_delivery_is_reported_to_its_sender(self, ledger: Ledger, keyring: Keyring) -> None:
        k, env, delivery_row = await self._shared(ledger, keyring)
        delivery = Envelope.model_validate_json(delivery_row.value)
        assert await k.tick(NOW + timedelta(minutes=29)) == 0
        assert await k.tick(NOW + timedelta(minutes=31)) == 2  # warning and breach: one report
        assert await k.tick(NOW + timedelta(hours=2)) == 0
        restarted = ClockKeeper(ledger, CLOCKS, load_calendar(None), Time(NOW), delivery_topic=REGISTRY.delivery_topic)
        assert await restarted.tick(NOW + timedelta(hours=3)) == 0
        (report,) = await not_delivered(ledger)
        assert isinstance(report.payload, SystemReceipt)
        assert report.payload.receipted_message_id == env.message_id
        assert report.payload.reason_code == NOT_ACKNOWLEDGED
        assert str(delivery.message_id) in (report.payload.detail or "")
        assert "school:900001" in (report.payload.detail or "")
        assert report.sender_org == GATE_ORG
        assert keyring.verifier().check(report, NOW + timedelta(hours=1)).reason is None
        assert not any(value in report.model_dump_json() for value in PERSONAL)
        assert await alerts(ledger) == []  # a delivery clock sends no alert
        # The school's system comes back late: recorded as any receipt, and the clock stops late.
        assert await receive_delivery(ledger, delivery_row.value.encode(), NOW + timedelta(hours=4)) == "delivered"
        assert len(await ledger.events("delivery.received")) == 1
        await k.catch_up()
        (stopped,) = await ledger.events("clock.stopped")
        assert stopped.detail["clock"] == "delivery_ack_school"
        assert stopped.detail["on_time"] is False
        assert len(await not_delivered(ledger)) == 1
        (line,) = [x for x in await explain(ledger, str(env.message_id)) if x.startswith("clock ")]
        assert line.startswith(f"clock delivery_ack_school ({str(delivery.message_id)[:8]})")
        assert "(late); escalates to sender" in line

    async def test_a_delivery_acknowledged_in_time_is_not_reported(self, ledger: Ledger, keyring: Keyring) -> None:
        k, _, delivery_row = await self._shared(ledger, keyring)
        assert await receive_delivery(ledger, delivery_row.value.encode(), NOW + timedelta(minutes=5)) == "delivered"
        assert await k.tick(NOW + timedelta(hours=1)) == 0
        assert await not_delivered(ledger) == []
        assert "clock.stopped" in await kinds(ledger)

    async def test_only_acknowledging_recipients_get_a_clock_and_a_withdrawal_stops_it(
        self, ledger: Ledger, keyring: Keyring
    ) -> None:
        k = signed_keeper(ledger, Time(NOW), keyring)
        source, school, la = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with ledger.transaction() as tx:  # as the gate writes them
            await tx.event("delivery.queued", source, NOW, delivery_id=str(school), recipient="school:900001")
            await tx.event("delivery.queued", source, NOW, delivery_id=str(la), recipient="la:999")
            await tx.event(
                "share.withdrawn",
                source,
                NOW + timedelta(seconds=2),
                delivery_id=str(school),
                recipient="school:900001",
                reason="consent_withdrawn",
            )
        await k.catch_up()
        (row,) = await list_clocks(ledger)  # la: has no inbox that acknowledges: no clock
        assert (row.name, row.subject_id, row.state) == ("delivery_ack_school", str(school), "stopped")
        assert await k.tick(NOW + timedelta(hours=1)) == 0
        assert await not_delivered(ledger) == []

    @staticmethod
    async def _shared(ledger: Ledger, keyring: Keyring) -> tuple[ClockKeeper, Envelope, OutboxRow]:
        """A police notification shared with its school at NOW."""
        at = Time(NOW)
        k = signed_keeper(ledger, at, keyring)
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        gate = GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=BUILTIN_POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=at,
        )
        env = police_envelope()
        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "share"
        (delivery_row,) = await outbox(ledger, EDUCATION_DELIVERIES)
        return k, env, delivery_row


class TestSqliteEscalation(SqliteBackend, EscalationContract):
    """Escalations and non-delivery reports on SQLite."""

    async def test_the_running_stack_keeper_signs_as_the_gate(self, ledger: Ledger, tmp_path: Path) -> None:
        keyring = Keyring(tmp_path / "keys")  # the data dir's key store, as `mash up` leaves it
        keyring.gate()
        running = start_clock_keeper(
            Settings(data_dir=tmp_path, clock_tick_s=600), ledger, Time(START), REGISTRY.delivery_topic
        )
        try:
            await receive(ledger, contact(), START)
            assert await running.tick(START + timedelta(hours=25)) == 2
        finally:
            await running.stop()
        sent = await alerts(ledger)
        assert len(sent) == 2
        assert all(keyring.verifier().check(env, START + timedelta(hours=25)).reason is None for _, env in sent)


@pytest.mark.postgres
class TestPostgresEscalation(PostgresBackend, EscalationContract):
    """Escalations and non-delivery reports on PostgreSQL."""
