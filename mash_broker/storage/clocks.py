"""Declared clocks in the ledger: started and stopped with their events, warned and breached once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select, update

from mash_broker.core.records import ClockRecord
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.rows import clock_record


class ClockWrites(Writes):
    async def message_envelope(self, message_id: str) -> str | None:
        """A recorded message's envelope (JSON), for a clock whose subject is a field of its payload."""
        q = select(t.messages.c.envelope).where(t.messages.c.message_id == message_id)
        envelope: str | None = (await self.conn.execute(q)).scalar_one_or_none()
        return envelope

    async def message_correlation(self, message_id: str) -> str | None:
        """A recorded message's correlation id, so a clock's alert sits with its case's messages."""
        q = select(t.messages.c.correlation_id).where(t.messages.c.message_id == message_id)
        correlation: str | None = (await self.conn.execute(q)).scalar_one_or_none()
        return correlation

    async def delivery_source(self, delivery_id: str) -> tuple[str, str] | None:
        """A delivery's source message id and recipient, or None if the ledger has no such delivery."""
        q = select(t.deliveries.c.message_id, t.deliveries.c.recipient).where(t.deliveries.c.delivery_id == delivery_id)
        row = (await self.conn.execute(q)).first()
        return (row[0], row[1]) if row else None

    async def decision_areas(self, message_id: str) -> tuple[str, ...]:
        """The authorities a message was first decided under (``decision.recorded``'s ``areas``; none: ())."""
        e = t.events.c
        q = (
            select(e.detail)
            .where(e.message_id == message_id, e.event_type == "decision.recorded")
            .order_by(e.seq)
            .limit(1)
        )
        detail = (await self.conn.execute(q)).scalar_one_or_none()
        areas = (detail or {}).get("areas") if isinstance(detail, dict) else None
        return tuple(str(a) for a in areas) if isinstance(areas, list) else ()

    async def start_clock(
        self,
        *,
        clock_id: uuid.UUID,
        name: str,
        subject_id: str,
        started_at: datetime,
        due_at: datetime,
        warn_at: datetime,
        escalate_to: str,
    ) -> bool:
        """Start a declared clock for a subject; False if that clock already exists (a redelivered start)."""
        q = select(t.clocks.c.clock_id).where(t.clocks.c.clock_id == str(clock_id))
        if (await self.conn.execute(q)).first():
            return False
        await self.conn.execute(
            t.clocks.insert().values(
                clock_id=str(clock_id),
                name=name,
                subject_id=subject_id,
                started_at=started_at,
                due_at=due_at,
                warn_at=warn_at,
                escalate_to=escalate_to,
            )
        )
        return True

    async def stop_clock(self, clock_id: uuid.UUID, at: datetime) -> datetime | None:
        """Stop a running clock; its deadline, or None if it was not running (never started, or stopped)."""
        res = await self.conn.execute(
            update(t.clocks)
            .where(t.clocks.c.clock_id == str(clock_id), t.clocks.c.stopped_at.is_(None))
            .values(stopped_at=at)
            .returning(t.clocks.c.due_at)
        )
        due: datetime | None = res.scalar_one_or_none()
        return due

    async def clocks_to_flag(self, now: datetime) -> list[ClockRecord]:
        """Running clocks with a warning or breach due and not yet recorded, soonest deadline first."""
        c = t.clocks.c
        q = (
            select(t.clocks)
            .where(
                c.stopped_at.is_(None),
                or_(
                    c.warned_at.is_(None) & (c.warn_at <= now),
                    c.breached_at.is_(None) & (c.due_at <= now),
                ),
            )
            .order_by(c.due_at, c.clock_id)
        )
        return [clock_record(r) for r in await self._rows(q)]

    async def flag_clock(self, clock_id: str, flag: str, at: datetime) -> bool:
        """Set ``warned_at`` or ``breached_at`` once; False if it was already set (by any keeper)."""
        if flag not in ("warned_at", "breached_at"):
            raise ValueError(f"not a clock flag: {flag}")
        column = t.clocks.c[flag]
        res = await self.conn.execute(
            update(t.clocks).where(t.clocks.c.clock_id == clock_id, column.is_(None)).values({flag: at})
        )
        return bool(res.rowcount)


class ClockReads(Reads):
    async def clocks(self, *, subject_id: str | None = None) -> list[ClockRecord]:
        """Every clock (or a subject's), soonest deadline first."""
        q = select(t.clocks).order_by(t.clocks.c.due_at, t.clocks.c.clock_id)
        if subject_id is not None:
            q = q.where(t.clocks.c.subject_id == subject_id)
        return [clock_record(r) for r in await self._all(q)]
