"""The declared clocks as a projection of the audited log: each start and stop event, whichever process
appended it, starts or stops its clock once (the projector guarantees the once; the clock rows'
deterministic ids keep a replayed start from doubling anyway).

In a region (``core.areas``) each clock runs under the authority of the message it is about: an authority's
own clocks (its ``clocks.toml``: time, warning, calendar, escalation, or not run at all) and its own school
calendar. The authority is the start event's ``area`` (a delivery's), else the authorities the message was
decided under; a message of two authorities (a cross-border child) gets the earlier of their deadlines,
one of no authority the deployment's clocks. What starts and stops a clock is the same everywhere.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mash_broker.contracts import deterministic_id
from mash_broker.core.clocks.calendar import SchoolCalendar
from mash_broker.core.clocks.deadlines import due_after_days, due_after_hours, is_working_day
from mash_broker.core.clocks.declared import CalendarKind, ClockSpec, Trigger
from mash_broker.core.logging import get_logger
from mash_broker.core.ports import ClockTransaction
from mash_broker.core.records import EventRecord

if TYPE_CHECKING:
    from mash_broker.core.areas import Region

log = get_logger("mash.clocks")

# What the keeper appends itself: never fed back to the clocks (no clock can loop on its own events).
CLOCK_EVENTS = frozenset({"clock.started", "clock.stopped", "clock.warning", "clock.breached"})


def clock_id(name: str, subject_id: str) -> uuid.UUID:
    """The same clock for the same subject is always the same row."""
    return deterministic_id("clock", name, subject_id)


class ClockProjection:
    """Starts and stops the declared clocks on their events; the keeper warns and breaches them."""

    name = "clocks"
    writes = CLOCK_EVENTS
    replays_history = True  # a clock's state is a function of the whole log; replaying it is idempotent

    def __init__(
        self,
        clocks: tuple[ClockSpec, ...],
        school_calendar: SchoolCalendar,
        tz: zoneinfo.ZoneInfo,
        region: Region | None = None,
    ) -> None:
        self.clocks, self.school_calendar, self.tz, self.region = clocks, school_calendar, tz, region

    def due_at(
        self,
        spec: ClockSpec,
        started_at: datetime,
        detail: dict[str, Any] | None = None,
        calendar: SchoolCalendar | None = None,
    ) -> datetime | None:
        """The deadline (school days on ``calendar``, else the deployment's), or None if the start event does
        not carry the one the clock reads from it."""
        if spec.due_field is not None:
            return _moment((detail or {}).get(spec.due_field))
        if spec.hours is not None:
            return due_after_hours(started_at, spec.hours)
        calendar = calendar or self.school_calendar
        is_open = is_working_day if spec.calendar is CalendarKind.WORKING_DAYS else calendar.is_school_day
        return due_after_days(started_at, spec.working_days or 0, is_open, self.tz)

    async def apply(self, tx: ClockTransaction, event: EventRecord) -> None:
        kind, detail = event.event_type, dict(event.detail)
        for spec in self.clocks:
            if spec.start.matches(kind, detail):
                subject = await _subject(tx, spec.start, event.message_id, detail)
                if subject:
                    await self._start_for(tx, spec, subject, event, detail)
            for stop in spec.stops:
                if stop.matches(kind, detail):
                    subject = await _subject(tx, stop, event.message_id, detail)
                    if subject:
                        await self._stop(tx, spec, subject, event.at)

    async def _start_for(
        self, tx: ClockTransaction, spec: ClockSpec, subject: str, event: EventRecord, detail: dict[str, Any]
    ) -> None:
        """Start ``spec`` as the event's authority runs it (the deployment's outside a region)."""
        if self.region is None:
            await self._start(tx, spec, subject, event.at, detail)
            return
        codes = await self._authorities(tx, event, detail)
        if not codes:  # a message of no single authority: the deployment's clocks, the regional calendar
            regional = self.region.regional.calendar if self.region.regional is not None else None
            await self._start(tx, spec, subject, event.at, detail, regional)
            return
        options = []
        for code in codes:
            area = self.region.areas[code]
            own = spec if area.clocks is None else next((c for c in area.clocks if c.name == spec.name), None)
            if own is None:
                log.info("clock.not_started", message_id=subject, clock=spec.name, reason="not_run_here", area=code)
                continue
            due = self.due_at(own, event.at, detail, area.calendar)
            options.append((due, code, own, area.calendar))
        if not options:
            return  # switched off by every authority of the message
        # Two authorities (a cross-border child): the earlier deadline holds.
        timed = [o for o in options if o[0] is not None] or options
        _, code, own, calendar = min(timed, key=lambda o: (o[0] or event.at, o[1]))
        await self._start(tx, own, subject, event.at, detail, calendar, code)

    async def _authorities(self, tx: ClockTransaction, event: EventRecord, detail: dict[str, Any]) -> list[str]:
        """The authorities of the region a start event is about: a delivery's own, else its message's."""
        assert self.region is not None
        area = detail.get("area")
        if isinstance(area, str) and area in self.region.areas:
            return [area]
        if event.message_id is None:
            return []
        return sorted(a for a in await tx.decision_areas(event.message_id) if a in self.region.areas)

    async def _start(
        self,
        tx: ClockTransaction,
        spec: ClockSpec,
        subject: str,
        at: datetime,
        detail: dict[str, Any],
        calendar: SchoolCalendar | None = None,
        area: str | None = None,
    ) -> None:
        cid = clock_id(spec.name, subject)
        due = self.due_at(spec, at, detail, calendar)
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
                **({"area": area} if area is not None else {}),
            )

    async def _stop(self, tx: ClockTransaction, spec: ClockSpec, subject: str, at: datetime) -> None:
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


def _moment(value: object) -> datetime | None:
    """An aware time from an event detail (ISO 8601), or None."""
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.utcoffset() is not None else None


async def _subject(
    tx: ClockTransaction, trigger: Trigger, message_id: str | None, detail: dict[str, Any]
) -> str | None:
    """The subject's message id: from the event, or from a field of the event's message."""
    field = trigger.payload_field
    if field is None:
        return trigger.subject_of(message_id, detail)
    if message_id is None:
        return None
    envelope = await tx.message_envelope(message_id)
    if envelope is None:
        return None
    value = json.loads(envelope).get("payload", {}).get(field)
    return str(value) if value else None
