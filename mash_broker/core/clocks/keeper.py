"""Runs the declared clocks from the ledger: started and stopped in the transaction of their events,
warned and breached by a periodic tick. Every state change is a ledger row and an audited event, so a
restarted keeper carries on exactly where the last one stopped (nothing lost, nothing doubled).
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from mash_broker.contracts import AlertState, deterministic_id
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.clocks.calendar import SchoolCalendar, load_calendar
from mash_broker.core.clocks.deadlines import due_after_days, due_after_hours, is_working_day
from mash_broker.core.clocks.declared import CalendarKind, ClockSpec, Report, Trigger, load_clocks
from mash_broker.core.clocks.escalation import Sign, escalate
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.settings import Settings
from mash_broker.core.signing import existing_signer, sign
from mash_broker.core.tasks import cancel
from mash_broker.storage import Ledger, Tx
from mash_broker.storage import schema as t

log = get_logger("mash.clocks")


def clock_id(name: str, subject_id: str) -> uuid.UUID:
    """The same clock for the same subject is always the same row."""
    return deterministic_id("clock", name, subject_id)


class ClockKeeper:
    """Starts, stops, warns and breaches the declared clocks; state lives only in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        clocks: tuple[ClockSpec, ...],
        school_calendar: SchoolCalendar,
        clock: Callable[[], datetime],
        *,
        tz: zoneinfo.ZoneInfo | None = None,
        interval_s: float = 30.0,
        sign: Sign | None = None,
    ) -> None:
        self.ledger, self.clocks, self.school_calendar, self.clock = ledger, clocks, school_calendar, clock
        self.sign = sign  # signs the alerts and non-delivery reports as mash:gate (None: unsigned)
        self._reports = {spec.name: spec.report for spec in clocks}
        self.tz = tz or school_calendar.tz
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def install(self) -> ClockKeeper:
        """Start and stop clocks inside every ledger transaction that writes their events."""
        self.ledger.on_event(self.on_event)
        return self

    def due_at(self, spec: ClockSpec, started_at: datetime, detail: dict[str, Any] | None = None) -> datetime | None:
        """The deadline, or None if the start event does not carry the one the clock reads from it."""
        if spec.due_field is not None:
            return _moment((detail or {}).get(spec.due_field))
        if spec.hours is not None:
            return due_after_hours(started_at, spec.hours)
        is_open = is_working_day if spec.calendar is CalendarKind.WORKING_DAYS else self.school_calendar.is_school_day
        return due_after_days(started_at, spec.working_days or 0, is_open, self.tz)

    async def on_event(
        self, tx: Tx, event_type: str, message_id: str | None, at: datetime, detail: dict[str, Any]
    ) -> None:
        for spec in self.clocks:
            if spec.start.matches(event_type, detail):
                subject = await _subject(tx, spec.start, message_id, detail)
                if subject:
                    await self._start(tx, spec, subject, at, detail)
            for stop in spec.stops:
                if stop.matches(event_type, detail):
                    subject = await _subject(tx, stop, message_id, detail)
                    if subject:
                        await self._stop(tx, spec, subject, at)

    async def _start(self, tx: Tx, spec: ClockSpec, subject: str, at: datetime, detail: dict[str, Any]) -> None:
        cid = clock_id(spec.name, subject)
        due = self.due_at(spec, at, detail)
        if due is None:
            log.warning(
                "clock.not_started", message_id=subject, clock=spec.name, reason="no_deadline", field=spec.due_field
            )
            return
        warn = max(due - timedelta(hours=spec.warn_before_hours), at)
        if await tx.start_clock(
            clock_id=cid,
            name=spec.name,
            subject_id=subject,
            started_at=at,
            due_at=due,
            warn_at=warn,
            escalate_to=spec.escalate_to,
        ):
            await tx.event(
                "clock.started",
                subject,
                at,
                clock=spec.name,
                clock_id=str(cid),
                due_at=due.isoformat(),
                warn_at=warn.isoformat(),
                escalate_to=spec.escalate_to,
            )

    async def _stop(self, tx: Tx, spec: ClockSpec, subject: str, at: datetime) -> None:
        cid = clock_id(spec.name, subject)
        if (due := await tx.stop_clock(cid, at)) is not None:
            await tx.event(
                "clock.stopped",
                subject,
                at,
                clock=spec.name,
                clock_id=str(cid),
                due_at=due.isoformat(),
                on_time=at <= due,
            )

    async def tick(self, now: datetime | None = None) -> int:
        """Emit each due warning and breach exactly once, with what it sends (an alert to `escalate_to`, or a
        non-delivery report to the sender) in the same transaction; returns how many events were emitted."""
        now = now or self.clock()
        emitted = 0
        async with self.ledger.transaction() as tx:
            for row in await tx.clocks_to_flag(now):
                for flag, when, state in (
                    ("warned_at", "warn_at", AlertState.WARNING),
                    ("breached_at", "due_at", AlertState.BREACHED),
                ):
                    if row[flag] is not None or row[when] > now:
                        continue
                    if not await tx.flag_clock(row["clock_id"], flag, now):
                        continue  # another keeper recorded it first
                    # A clock no longer declared still alerts whoever it named when it started.
                    report = self._reports.get(row["name"], Report.ALERT)
                    sent_to = await escalate(tx, row, state, report, now, self.sign)
                    event_type = f"clock.{state.value}"
                    await tx.event(
                        event_type,
                        row["subject_id"],
                        now,
                        clock=row["name"],
                        clock_id=row["clock_id"],
                        due_at=row["due_at"].isoformat(),
                        escalate_to=row["escalate_to"],
                        sent_to=sent_to,
                    )
                    log.warning(
                        event_type,
                        message_id=row["subject_id"],
                        clock=row["name"],
                        escalate_to=row["escalate_to"],
                        topic=sent_to,
                    )
                    emitted += 1
        return emitted

    async def _every_interval(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep ticking; the ledger still holds every clock
                log.warning("clock.tick_failed", error=type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._every_interval(), name="clock-keeper")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None


def start_clock_keeper(settings: Settings, ledger: Ledger, clock: Callable[[], datetime]) -> ClockKeeper:
    """The running stack's keeper: the declared clocks (MASH_CLOCKS_FILE), hooked into the ledger and ticking
    every MASH_CLOCK_TICK_S. Install it before anything writes the events that start clocks."""
    declared = load_clocks(settings.clocks_file)
    calendar = load_calendar(settings.school_calendar, settings.timezone)
    signer = existing_signer(KeyStore(settings.keys_dir), GATE_ORG)  # `mash up` ensured it before
    keeper = ClockKeeper(
        ledger,
        declared.clocks,
        calendar,
        clock,
        interval_s=settings.clock_tick_s,
        sign=(lambda env: sign(env, signer)) if signer is not None else None,
    ).install()
    keeper.start()
    log.info("clocks.started", clocks=len(declared.clocks), source=declared.source)
    return keeper


def _moment(value: object) -> datetime | None:
    """An aware time from an event detail (ISO 8601), or None."""
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.utcoffset() is not None else None


async def _subject(tx: Tx, trigger: Trigger, message_id: str | None, detail: dict[str, Any]) -> str | None:
    """The subject's message id: from the event, or from a field of the event's message."""
    field = trigger.payload_field
    if field is None:
        return trigger.subject_of(message_id, detail)
    if message_id is None:
        return None
    envelope = (
        await tx.conn.execute(select(t.messages.c.envelope).where(t.messages.c.message_id == message_id))
    ).scalar_one_or_none()
    if envelope is None:
        return None
    value = json.loads(envelope).get("payload", {}).get(field)
    return str(value) if value else None
