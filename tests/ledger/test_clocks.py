"""Declared clocks run from the ledger, on SQLite and PostgreSQL: started and stopped by their events
(a projection of the audited log, applied by ``catch_up`` and before every tick), never doubled by a
redelivery, warned and breached exactly once, and carried on by a restarted keeper.

Time is a controllable clock passed in; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from consent_builders import POLICY, contact, outcome

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.education.inbox import record_read
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import BUILTIN_POLICY
from mash_broker.contracts import Envelope
from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.declared import ClockSpec, load_clocks
from mash_broker.core.clocks.keeper import ClockKeeper, clock_id, start_clock_keeper
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import encode
from mash_broker.core.records import ClockRecord
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

from .gate_contract import DEADLINE, DIRECTORY, NOW, police_envelope, wire
from .test_postgres import PostgresBackend
from .test_sqlite import SqliteBackend

CLOCKS = load_clocks(None).clocks  # the shipped mash_broker/defaults/clocks.toml
START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday afternoon (GMT)


class Time:
    """A controllable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def keeper(ledger: Ledger, at: Time, clocks: tuple[ClockSpec, ...] = CLOCKS) -> ClockKeeper:
    return ClockKeeper(ledger, clocks, load_calendar(None), at, delivery_topic=REGISTRY.delivery_topic)


async def receive(ledger: Ledger, message: Envelope, at: datetime) -> None:
    """What the gate does for a new message: the row, then its audited event, in one transaction."""
    async with ledger.transaction() as tx:
        await tx.insert_message(
            message_id=message.message_id,
            kind=message.kind,
            sender_org=message.sender_org,
            correlation_id=message.correlation_id,
            topic="t",
            content_hash="h",
            received_at=at,
            envelope=encode(message),
        )
        await tx.event("message.received", message.message_id, at, kind=message.kind)


def outcome_for(contact_id: uuid.UUID) -> Envelope:
    o = outcome()
    return o.model_copy(update={"payload": o.payload.model_copy(update={"contact_message_id": contact_id})})


async def clocks_of(ledger: Ledger) -> list[ClockRecord]:
    return await ledger.clocks()


async def kinds(ledger: Ledger) -> list[str]:
    return [e.event_type for e in await ledger.events() if e.event_type.startswith("clock.")]


class ClockContract:
    """Subclasses provide ``ledger``."""

    async def test_contact_starts_and_outcome_stops_the_decision_clock(self, ledger: Ledger) -> None:
        k = keeper(ledger, Time(START))
        c = contact()
        await receive(ledger, c, START)
        await k.catch_up()
        (row,) = await clocks_of(ledger)
        assert row.name == "contact_decision"
        assert row.subject_id == str(c.message_id)
        assert row.clock_id == str(clock_id("contact_decision", str(c.message_id)))
        assert row.due_at == START + timedelta(hours=24)
        assert row.warn_at == START + timedelta(hours=20)
        await receive(ledger, outcome_for(c.message_id), START + timedelta(hours=3))
        await k.catch_up()
        (row,) = await clocks_of(ledger)
        assert row.stopped_at == START + timedelta(hours=3)
        stopped = (await ledger.events("clock.stopped"))[0]
        assert stopped.message_id == str(c.message_id)
        assert stopped.detail["on_time"] is True
        assert await keeper(ledger, Time(START)).tick(START + timedelta(days=3)) == 0  # stopped: never breached

    async def test_redelivered_start_never_doubles_and_stray_stop_does_nothing(self, ledger: Ledger) -> None:
        k = keeper(ledger, Time(START))
        c = contact()
        await receive(ledger, c, START)
        async with ledger.transaction() as tx:  # the same start event again, an hour later
            await tx.event("message.received", c.message_id, START + timedelta(hours=1), kind="contact")
        await receive(ledger, outcome_for(uuid.uuid4()), START)  # an outcome for a contact never seen
        await k.catch_up()
        (row,) = await clocks_of(ledger)
        assert row.started_at == START
        assert row.stopped_at is None
        assert await kinds(ledger) == ["clock.started"]
        assert k.clocks == CLOCKS

    async def test_warning_and_breach_are_emitted_once_each(self, ledger: Ledger) -> None:
        at = Time(START)
        k = keeper(ledger, at)
        c = contact()
        await receive(ledger, c, START)
        assert await k.tick(START + timedelta(hours=19)) == 0
        assert await k.tick(START + timedelta(hours=20)) == 1
        assert await k.tick(START + timedelta(hours=21)) == 0
        assert await k.tick(START + timedelta(hours=24)) == 1
        assert await k.tick(START + timedelta(hours=30)) == 0
        assert await kinds(ledger) == ["clock.started", "clock.warning", "clock.breached"]
        breach = (await ledger.events("clock.breached"))[0]
        assert breach.message_id == str(c.message_id)
        assert breach.detail["escalate_to"] == "mash:team-manager"
        await receive(ledger, outcome_for(c.message_id), START + timedelta(hours=31))
        await k.catch_up()
        assert (await ledger.events("clock.stopped"))[0].detail["on_time"] is False

    async def test_a_restarted_keeper_carries_on_from_the_ledger(self, ledger: Ledger) -> None:
        first = keeper(ledger, Time(START))
        c = contact()
        await receive(ledger, c, START)
        assert await first.tick(START + timedelta(hours=21)) == 1  # warned before the "crash"
        await ledger.engine.dispose()  # the process's connections are gone
        restarted = ClockKeeper(
            ledger, CLOCKS, load_calendar(None), Time(START), delivery_topic=REGISTRY.delivery_topic
        )
        assert await restarted.tick(START + timedelta(hours=22)) == 0  # the warning is not repeated
        assert await restarted.tick(START + timedelta(hours=25)) == 1  # the breach is not lost
        assert await first.tick(START + timedelta(hours=26)) == 0  # nor doubled by a second keeper
        assert await kinds(ledger) == ["clock.started", "clock.warning", "clock.breached"]

    async def test_a_keeper_down_through_both_emits_both_once(self, ledger: Ledger) -> None:
        keeper(ledger, Time(START))
        await receive(ledger, contact(), START)
        restarted = ClockKeeper(
            ledger, CLOCKS, load_calendar(None), Time(START), delivery_topic=REGISTRY.delivery_topic
        )
        assert await restarted.tick(START + timedelta(days=2)) == 2
        assert await restarted.tick(START + timedelta(days=3)) == 0

    async def test_working_day_clock_from_event_detail(self, ledger: Ledger) -> None:
        k = keeper(ledger, Time(START))
        strategy = uuid.uuid4()
        async with ledger.transaction() as tx:
            await tx.event("strategy_discussion.held", strategy, START)  # initial_child_protection_conference
        await k.catch_up()
        (row,) = await clocks_of(ledger)
        assert row.due_at == datetime(2026, 12, 11, 15, 0, tzinfo=UTC)  # 15 working days: three weeks
        assert row.warn_at == datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # 72 hours before
        async with ledger.transaction() as tx:
            await tx.event(
                "conference.held", uuid.uuid4(), START + timedelta(days=10), strategy_message_id=str(strategy)
            )
        await k.catch_up()
        assert (await clocks_of(ledger))[0].stopped_at == START + timedelta(days=10)

    async def test_deadline_carried_by_the_start_event(self, ledger: Ledger) -> None:
        k = keeper(ledger, Time(START))
        request, answer_by = uuid.uuid4(), START + timedelta(days=5)
        async with ledger.transaction() as tx:  # as adapters/health writes it
            await tx.event("s47.gp_report_requested", request, START, answer_by=answer_by.isoformat())
            await tx.event("s47.gp_report_requested", uuid.uuid4(), START)  # no deadline: not started
        await k.catch_up()
        (row,) = await clocks_of(ledger)
        assert (row.name, row.due_at) == ("s47_gp_report", answer_by)
        assert row.warn_at == answer_by - timedelta(hours=24)
        async with ledger.transaction() as tx:
            await tx.event(
                "s47.gp_report_received", request, START + timedelta(days=6), request_message_id=str(request)
            )
        await k.catch_up()
        assert (await ledger.events("clock.stopped"))[0].detail["on_time"] is False

    async def test_through_the_gate(self, ledger: Ledger) -> None:
        at = Time(START)
        k = keeper(ledger, at)
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
        await process_inbound(ctx, encode(c).encode(), EDUCATION_INBOUND)
        await process_inbound(ctx, encode(c).encode(), EDUCATION_INBOUND)  # redelivered
        at.now = START + timedelta(hours=2)
        await process_inbound(ctx, encode(outcome_for(c.message_id)).encode(), EDUCATION_INBOUND)
        await k.catch_up()
        (decision,) = [r for r in await clocks_of(ledger) if r.name == "contact_decision"]
        assert decision.stopped_at == START + timedelta(hours=2)
        # The outcome's deliveries (the referring school, ...) run their acknowledgement clocks.
        others = [r for r in await clocks_of(ledger) if r.name != "contact_decision"]
        assert "delivery_ack_school" in {r.name for r in others}
        assert {r.name for r in others} <= {"delivery_ack_school", "delivery_ack_health", "delivery_ack_probation"}
        assert all(r.stopped_at is None for r in others)
        assert (await kinds(ledger))[:2] == ["clock.started", "clock.stopped"]

    async def test_the_encompass_clock_runs_from_delivery_to_a_key_adults_read(self, ledger: Ledger) -> None:
        at = Time(NOW)
        k = keeper(ledger, at)
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        ctx = GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=BUILTIN_POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=at,
        )
        read, unread = police_envelope(), police_envelope(incident_ref="TST/2026/0002")
        for env in (read, unread):
            assert await process_inbound(ctx, wire(env), POLICE_NOTIFICATIONS) == "share"
        await k.catch_up()
        running = {r.subject_id: r for r in await clocks_of(ledger) if r.name == "encompass_read"}
        assert len(running) == 2
        assert {r.due_at for r in running.values()} == {DEADLINE}, "due at the notification's notify_by"
        assert {r.warn_at for r in running.values()} == {DEADLINE - timedelta(hours=1)}

        [delivery] = [d for d in await ledger.deliveries_for("school:900001") if d.message_id == str(read.message_id)]
        await record_read(ledger, "900001", delivery.delivery_id, "Alex Keyadult", DEADLINE - timedelta(minutes=30))
        await k.tick(DEADLINE + timedelta(minutes=1))
        flagged = {
            (e.event_type, e.message_id)
            for e in await ledger.events()
            if e.event_type in ("clock.warning", "clock.breached") and e.detail["clock"] == "encompass_read"
        }
        [late] = [sid for sid in running if sid != delivery.delivery_id]
        assert flagged == {("clock.warning", late), ("clock.breached", late)}, "only the unread one"
        stopped = [e for e in await ledger.events("clock.stopped") if e.detail["clock"] == "encompass_read"]
        assert [(e.message_id, e.detail["on_time"]) for e in stopped] == [(delivery.delivery_id, True)]


class TestSqliteClocks(SqliteBackend, ClockContract):
    """Declared clocks on SQLite."""

    async def test_the_running_stack_keeper_ticks_by_itself(self, ledger: Ledger, tmp_path: Path) -> None:
        at = Time(START)
        settings = Settings(data_dir=tmp_path, clock_tick_s=0.01)
        running = start_clock_keeper(
            settings, ledger, at, REGISTRY.delivery_topic
        )  # hooked in, and ticking every 10 ms
        try:
            await receive(ledger, contact(), START)
            at.now = START + timedelta(hours=25)
            for _ in range(200):
                if "clock.breached" in await kinds(ledger):
                    break
                await asyncio.sleep(0.01)
        finally:
            await running.stop()
        assert await kinds(ledger) == ["clock.started", "clock.warning", "clock.breached"]

    async def test_clocks_survive_a_reopened_ledger_file(self, ledger: Ledger, tmp_path: Path) -> None:
        keeper(ledger, Time(START))
        c = contact()
        await receive(ledger, c, START)
        await ledger.close()  # the process stops
        reopened = await Ledger.open(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
        try:
            restarted = keeper(reopened, Time(START))
            assert await restarted.tick(START + timedelta(hours=25)) == 2  # warning and breach, once
            assert await restarted.tick(START + timedelta(hours=26)) == 0
            await receive(reopened, outcome_for(c.message_id), START + timedelta(hours=27))
            await restarted.catch_up()
            assert await kinds(reopened) == ["clock.started", "clock.warning", "clock.breached", "clock.stopped"]
        finally:
            await reopened.close()


@pytest.mark.postgres
class TestPostgresClocks(PostgresBackend, ClockContract):
    """Declared clocks on PostgreSQL."""
