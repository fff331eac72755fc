"""Following the audited log: each projection's cursor (the seq of the last event it applied), guarded
so two processes never apply the same event, and the entries after it.

The cursor moves in the transaction that makes the projection's own writes, so an event is applied
exactly once: a crash before commit loses both, a commit keeps both.
"""

from __future__ import annotations

import zlib

from sqlalchemy import func, select, text, update

from mash_broker.core.records import EventRecord
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.rows import event_record

PROJECTION_LOCK = 0x6D6173685F700000  # "mash_p" + a name's CRC: the PostgreSQL advisory lock of one projection


class ProjectionWrites(Writes):
    async def claim_projection(self, name: str, *, new_from_end: bool = False) -> int:
        """Hold the projection until this transaction commits (another process's claim waits) and return
        its cursor. A projection never claimed before starts at the beginning of the log, or with
        ``new_from_end`` at its current end (what happened before it existed is not its business)."""
        if self.conn.dialect.name == "postgresql":
            key = PROJECTION_LOCK + zlib.crc32(name.encode())
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        # SQLite: a write transaction already holds the database lock (BEGIN IMMEDIATE).
        q = select(t.projections.c.last_seq).where(t.projections.c.name == name)
        cursor = (await self.conn.execute(q)).scalar_one_or_none()
        if cursor is not None:
            return int(cursor)
        start = await self.last_event_seq() if new_from_end else 0
        await self.conn.execute(t.projections.insert().values(name=name, last_seq=start))
        return start

    async def events_after(self, seq: int, limit: int) -> list[EventRecord]:
        """The next ``limit`` entries of the audited log after ``seq``, in order."""
        q = select(t.events).where(t.events.c.seq > seq).order_by(t.events.c.seq).limit(limit)
        return [event_record(r) for r in await self._rows(q)]

    async def advance_projection(self, name: str, seq: int) -> None:
        """Record that the projection has applied every entry up to ``seq`` (claimed in this transaction)."""
        await self.conn.execute(update(t.projections).where(t.projections.c.name == name).values(last_seq=seq))

    async def last_event_seq(self) -> int:
        """The seq of the newest entry of the audited log (0 when it is empty)."""
        return int((await self.conn.execute(select(func.max(t.events.c.seq)))).scalar_one() or 0)


class ProjectionReads(Reads):
    async def projection_cursor(self, name: str) -> int | None:
        """Where a projection stands (None: never claimed), read without taking any lock."""
        row = await self._first(select(t.projections.c.last_seq).where(t.projections.c.name == name))
        return None if row is None else int(row["last_seq"])

    async def last_event_seq(self) -> int:
        """The seq of the newest entry of the audited log (0 when it is empty)."""
        row = await self._first(select(func.max(t.events.c.seq).label("seq")))
        return int(row["seq"] or 0) if row else 0
