"""Side effects follow the audited log, not the process: on SQLite and PostgreSQL.

A Key Adult's read recorded through another ledger handle (another process, as `mash school ack` is)
stops its notification's clock in the running stack, and the projector carries on after a restart
from the cursor it keeps in the ledger, applying each event exactly once, also with two following it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import TypeVar

import pytest

from mash_broker.agencies.education.inbox import record_read
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import BUILTIN_POLICY
from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.declared import load_clocks
from mash_broker.core.clocks.keeper import ClockKeeper
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.projector import Projector
from mash_broker.core.records import ClockRecord, EventRecord
from mash_broker.storage import Ledger, Tx

from .gate_contract import DEADLINE, DIRECTORY, NOW, police_envelope, wire

CLOCKS = load_clocks(None).clocks  # the shipped mash_broker/defaults/clocks.toml
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T = TypeVar("T")


class Time:
    """A controllable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Tally:
    """A projection that records each entry it applies as an audited `test.applied` event (its own writes,
    so they land, or not, with the cursor), and can be told to fail on one event type."""

    writes = frozenset({"test.applied"})

    def __init__(self, name: str = "tally", *, replays_history: bool = True, fail_on: str | None = None) -> None:
        self.name, self.replays_history, self.fail_on = name, replays_history, fail_on

    async def apply(self, tx: Tx, event: EventRecord) -> None:
        if event.event_type == self.fail_on:
            raise RuntimeError("the projection failed on this entry")
        await tx.event("test.applied", None, event.at, projection=self.name, seq=event.seq)


async def append(ledger: Ledger, n: int, event_type: str = "test.happened") -> None:
    for _ in range(n):
        async with ledger.transaction() as tx:
            await tx.event(event_type, uuid.uuid4(), T0)


async def applied(ledger: Ledger, name: str = "tally") -> list[int]:
    return [e.detail["seq"] for e in await ledger.events("test.applied") if e.detail["projection"] == name]


async def happened(ledger: Ledger) -> list[int]:
    return [e.seq for e in await ledger.events() if e.event_type != "test.applied"]


async def encompass_clock(ledger: Ledger) -> ClockRecord | None:
    """The one encompass_read clock, once it has started."""
    clocks = [c for c in await ledger.clocks() if c.name == "encompass_read"]
    assert len(clocks) <= 1
    return clocks[0] if clocks else None


class ProjectorContract:
    """Subclasses provide ``ledger`` and ``other_handle`` (a second Ledger on the same database)."""

    async def _notified(self, ledger: Ledger, at: Time) -> str:
        """A police notification shared with its school through the gate; its delivery id."""
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        ctx = GateContext(
            ledger=ledger,
            policy=BUILTIN_POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=at,
            registry=REGISTRY,
        )
        env = police_envelope()
        assert await process_inbound(ctx, wire(env), POLICE_NOTIFICATIONS) == "share"
        [delivery] = [d for d in await ledger.deliveries_for("school:900001") if d.message_id == str(env.message_id)]
        return delivery.delivery_id

    async def test_a_read_recorded_by_another_process_stops_the_encompass_clock(
        self, ledger: Ledger, other_handle: Ledger
    ) -> None:
        at = Time(NOW)
        k = ClockKeeper(
            ledger, CLOCKS, load_calendar(None), at, delivery_topic=REGISTRY.delivery_topic
        )  # the running stack's keeper
        delivery_id = await self._notified(ledger, at)
        # `mash school ack`: a process of its own, with its own ledger handle.
        await record_read(other_handle, "900001", delivery_id, "Alex Keyadult", DEADLINE - timedelta(minutes=30))
        await k.tick(DEADLINE + timedelta(minutes=1))
        clock = await encompass_clock(ledger)
        assert clock is not None
        assert clock.stopped_at == DEADLINE - timedelta(minutes=30)
        flagged = [
            e
            for e in await ledger.events()
            if e.event_type in ("clock.warning", "clock.breached") and e.detail["clock"] == "encompass_read"
        ]
        assert flagged == [], "no escalation for a notification its Key Adult read in time"

    async def test_the_running_projector_sees_another_process_s_read_within_a_poll(
        self, ledger: Ledger, other_handle: Ledger
    ) -> None:
        at = Time(NOW)
        k = ClockKeeper(ledger, CLOCKS, load_calendar(None), at, delivery_topic=REGISTRY.delivery_topic)
        projector = Projector[Tx](ledger, (k.projection,), interval_s=0.05)
        await projector.start()
        try:
            delivery_id = await self._notified(ledger, at)  # polled: no poke registered here
            await _until(lambda: encompass_clock(ledger), lambda c: c is not None and c.stopped_at is None)
            await record_read(other_handle, "900001", delivery_id, "Alex Keyadult", DEADLINE - timedelta(minutes=5))
            stopped = await _until(
                lambda: encompass_clock(ledger), lambda c: c is not None and c.stopped_at is not None
            )
        finally:
            await projector.stop()
        assert stopped is not None
        assert stopped.stopped_at == DEADLINE - timedelta(minutes=5)
        await k.tick(DEADLINE + timedelta(hours=1))
        assert [e.event_type for e in await ledger.events() if e.detail.get("clock") == "encompass_read"] == [
            "clock.started",
            "clock.stopped",
        ], "no warning, no breach: it was read in time"

    async def test_the_projector_resumes_after_a_restart_without_reapplying(
        self, ledger: Ledger, other_handle: Ledger
    ) -> None:
        await append(ledger, 3)
        assert await Projector[Tx](ledger, (Tally(),)).catch_up() == 3
        assert await applied(ledger) == await happened(ledger)
        # The process stops; another starts on its own handle and finds the cursor in the ledger.
        await ledger.engine.dispose()
        restarted = Projector[Tx](other_handle, (Tally(),))
        assert await restarted.catch_up() == 3  # only its own three test.applied entries, skipped
        assert await applied(other_handle) == await happened(other_handle)
        await append(ledger, 2)
        await restarted.catch_up()
        assert await applied(ledger) == await happened(ledger), "each entry applied once, in order"
        assert len(await applied(ledger)) == 5

    async def test_a_failed_entry_rolls_back_with_the_cursor_and_is_applied_once_later(self, ledger: Ledger) -> None:
        await append(ledger, 2)
        await append(ledger, 1, "test.poison")
        with pytest.raises(RuntimeError):
            await Projector[Tx](ledger, (Tally(fail_on="test.poison"),)).catch_up()
        assert await applied(ledger) == []  # nothing of that batch kept: the cursor did not move either
        assert await ledger.projection_cursor("tally") in (None, 0)
        await Projector[Tx](ledger, (Tally(),)).catch_up()
        assert await applied(ledger) == await happened(ledger)

    async def test_two_projectors_on_two_handles_apply_each_entry_once(
        self, ledger: Ledger, other_handle: Ledger
    ) -> None:
        await append(ledger, 20)
        one, two = Projector[Tx](ledger, (Tally(),), batch=3), Projector[Tx](other_handle, (Tally(),), batch=3)
        await asyncio.gather(one.catch_up(), two.catch_up(), one.catch_up(), two.catch_up())
        assert await applied(ledger) == await happened(ledger)

    async def test_a_projection_about_now_starts_at_the_end_of_the_log(self, ledger: Ledger) -> None:
        await append(ledger, 4)  # before it existed: none of its business
        projector = Projector[Tx](ledger, (Tally("now", replays_history=False), Tally("all")))
        await projector.register()
        await append(ledger, 1)
        await projector.catch_up()
        assert len(await applied(ledger, "now")) == 1
        assert len(await applied(ledger, "all")) == 5

    async def test_its_own_writes_are_never_fed_back(self, ledger: Ledger) -> None:
        await append(ledger, 2)
        projector = Projector[Tx](ledger, (Tally(),))
        for _ in range(3):
            await projector.catch_up()
        assert len(await applied(ledger)) == 2
        assert await ledger.projection_cursor("tally") == await ledger.last_event_seq()

    async def test_a_poke_wakes_it_before_its_poll(self, ledger: Ledger) -> None:
        projector = Projector[Tx](ledger, (Tally(),), interval_s=60)
        await projector.start()
        ledger.on_append(projector.poke)
        try:
            await append(ledger, 1)
            await _until(lambda: applied(ledger), bool, timeout_s=5)
        finally:
            await projector.stop()


async def _until(read: Callable[[], Awaitable[T]], done: Callable[[T], object], timeout_s: float = 10) -> T:
    """Poll ``read`` until ``done`` holds (the projector runs in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await read()
        if done(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {value!r}")
        await asyncio.sleep(0.02)
