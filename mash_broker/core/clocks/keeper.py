"""Runs the declared clocks from the ledger: started and stopped by their projection of the audited log
(whichever process wrote the events), warned and breached by a periodic tick. Every state change is a
ledger row and an audited event, so a restarted keeper carries on exactly where the last one stopped
(nothing lost, nothing doubled). In a region (MASH_AREAS_DIR) each clock runs as the authority of its
message runs it (``core.clocks.projection``): its own clocks.toml and school calendar.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from mash_broker.contracts import AlertState
from mash_broker.core.area_files import region_of
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.clocks.calendar import SchoolCalendar, load_calendar
from mash_broker.core.clocks.declared import ClockSpec, Report, load_clocks
from mash_broker.core.clocks.escalation import Sign, escalate
from mash_broker.core.clocks.projection import ClockProjection, clock_id
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.policy import load_policy
from mash_broker.core.ports import ClockLedger, ClockTransaction
from mash_broker.core.projector import BATCH, Projector, follow
from mash_broker.core.records import ClockRecord
from mash_broker.core.settings import Settings
from mash_broker.core.signing import existing_signer, sign
from mash_broker.core.tasks import cancel

if TYPE_CHECKING:
    from mash_broker.core.areas import Region

__all__ = ["ClockKeeper", "clock_id", "start_clock_keeper"]

log = get_logger("mash.clocks")


class ClockKeeper:
    """Starts, stops, warns and breaches the declared clocks; state lives only in the ledger."""

    def __init__(
        self,
        ledger: ClockLedger,
        clocks: tuple[ClockSpec, ...],
        school_calendar: SchoolCalendar,
        clock: Callable[[], datetime],
        *,
        tz: zoneinfo.ZoneInfo | None = None,
        interval_s: float = 30.0,
        sign: Sign | None = None,
        delivery_topic: Callable[[str], str],
        region: Region | None = None,
    ) -> None:
        self.ledger, self.clocks, self.school_calendar, self.clock = ledger, clocks, school_calendar, clock
        self.sign = sign  # signs the alerts and non-delivery reports as mash:gate (None: unsigned)
        self.delivery_topic = delivery_topic  # where an organisation's alerts go (the agencies' registry)
        self._reports = {spec.name: spec.report for spec in clocks}
        self.tz = tz or school_calendar.tz
        self.projection = ClockProjection(clocks, school_calendar, self.tz, region)
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def catch_up(self) -> int:
        """Start and stop clocks for every event in the log not yet applied; returns how many were passed."""
        return await Projector[ClockTransaction](self.ledger, (self.projection,)).catch_up()

    async def tick(self, now: datetime | None = None) -> int:
        """Emit each due warning and breach exactly once, with what it sends (an alert to `escalate_to`, or a
        non-delivery report to the sender) in the same transaction; returns how many events were emitted.
        The clocks are first brought up to date with the log in that transaction, so a stop anyone recorded
        before the deadline is never reported as a breach."""
        now = now or self.clock()
        emitted = 0
        async with self.ledger.transaction() as tx:
            while await follow(tx, self.projection) == BATCH:
                pass
            for row in await tx.clocks_to_flag(now):
                for flag, when, state in (
                    ("warned_at", row.warn_at, AlertState.WARNING),
                    ("breached_at", row.due_at, AlertState.BREACHED),
                ):
                    if getattr(row, flag) is not None or when > now:
                        continue
                    if not await tx.flag_clock(row.clock_id, flag, now):
                        continue  # another keeper recorded it first
                    emitted += 1
                    await self._flagged(tx, row, state, now)
        return emitted

    async def _flagged(self, tx: ClockTransaction, row: ClockRecord, state: AlertState, now: datetime) -> None:
        # A clock no longer declared still alerts whoever it named when it started.
        report = self._reports.get(row.name, Report.ALERT)
        sent_to = await escalate(tx, row, state, report, now, self.sign, self.delivery_topic)
        event_type = f"clock.{state.value}"
        await tx.event(
            event_type,
            row.subject_id,
            now,
            clock=row.name,
            clock_id=row.clock_id,
            due_at=row.due_at.isoformat(),
            escalate_to=row.escalate_to,
            sent_to=sent_to,
        )
        log.warning(event_type, message_id=row.subject_id, clock=row.name, escalate_to=row.escalate_to, topic=sent_to)

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


def clock_keeper(
    settings: Settings,
    ledger: ClockLedger,
    clock: Callable[[], datetime],
    delivery_topic: Callable[[str], str],
    region: Region | None = None,
) -> ClockKeeper:
    """The running stack's keeper: the declared clocks (MASH_CLOCKS_FILE), ticking every MASH_CLOCK_TICK_S,
    signing what it sends as mash:gate; in a region (``region``, else read from MASH_AREAS_DIR) each
    authority's own clocks and calendar."""
    declared = load_clocks(settings.clocks_file)
    calendar = load_calendar(settings.school_calendar, settings.timezone)
    if region is None and settings.areas_dir is not None:
        region = _region(settings, calendar)
    signer = existing_signer(KeyStore(settings.keys_dir), GATE_ORG)  # `mash up` ensured it before
    log.info("clocks.declared", clocks=len(declared.clocks), source=declared.source)
    for area in region.areas.values() if region is not None else ():
        if area.clocks is not None:
            log.info("clocks.declared", clocks=len(area.clocks), source=area.clocks_source, area=area.code)
    return ClockKeeper(
        ledger,
        declared.clocks,
        calendar,
        clock,
        interval_s=settings.clock_tick_s,
        sign=(lambda env: sign(env, signer)) if signer is not None else None,
        delivery_topic=delivery_topic,
        region=region,
    )


def _region(settings: Settings, calendar: SchoolCalendar) -> Region | None:
    """The region as the gate loads it, for its authorities' clocks and calendars (its agreements are the
    gate's business: read here with any payload kind, checked strictly where the gate loads them)."""
    return region_of(settings, load_policy(settings.policy_file), calendar)


def start_clock_keeper(
    settings: Settings,
    ledger: ClockLedger,
    clock: Callable[[], datetime],
    delivery_topic: Callable[[str], str],
    region: Region | None = None,
) -> ClockKeeper:
    """The running stack's keeper, ticking (each tick first brings the clocks up to date with the log; the
    stack's projector does so between ticks, within a poll interval of each event)."""
    keeper = clock_keeper(settings, ledger, clock, delivery_topic, region)
    keeper.start()
    return keeper
