"""The outbox: records written with the transaction that made them, published afterwards by the relay."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, or_, select, update

from mash_broker.core.records import OutboxRow
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.rows import outbox_row

_INSERT_OUTBOX = t.outbox.insert()


class OutboxWrites(Writes):
    async def enqueue(
        self,
        *,
        outbox_id: uuid.UUID,
        topic: str,
        key: str | None,
        value: str,
        headers: dict[str, str],
        at: datetime,
        not_before: datetime | None = None,
    ) -> None:
        row = {
            "outbox_id": str(outbox_id),
            "topic": topic,
            "key": key,
            "value": value,
            "headers": headers,
            "created_at": at,
            "not_before": not_before,
            "published_at": None,
        }
        await self._insert(_INSERT_OUTBOX, row)

    async def _insert(self, statement: Any, params: dict[str, Any]) -> None:
        """Write one row (a transaction may buffer it instead: ``Tx._insert``)."""
        await self.conn.execute(statement, params)

    async def outbox_has(self, outbox_id: uuid.UUID) -> bool:
        q = select(t.outbox.c.seq).where(t.outbox.c.outbox_id == str(outbox_id))
        return (await self.conn.execute(q)).first() is not None


class OutboxReads(Reads):
    def _write(self) -> AbstractAsyncContextManager[Writes]:
        """A write transaction (the Ledger's)."""
        raise NotImplementedError

    async def pending_outbox(self, limit: int = 500, now: datetime | None = None) -> list[OutboxRow]:
        """Records to publish: not published, not cancelled, and not held past ``now``."""
        q = (
            select(t.outbox)
            .where(t.outbox.c.published_at.is_(None), t.outbox.c.cancelled_at.is_(None))
            .order_by(t.outbox.c.seq)
            .limit(limit)
        )
        if now is not None:
            q = q.where(or_(t.outbox.c.not_before.is_(None), t.outbox.c.not_before <= now))
        return [outbox_row(r) for r in await self._all(q)]

    async def unpublished(self, outbox_ids: Iterable[uuid.UUID]) -> list[OutboxRow]:
        """These outbox records, if not yet published nor cancelled (held or not), in order."""
        ids = [str(i) for i in outbox_ids]
        rows: list[RowMapping] = []
        for i in range(0, len(ids), 500):
            rows += await self._all(
                select(t.outbox).where(
                    t.outbox.c.outbox_id.in_(ids[i : i + 500]),
                    t.outbox.c.published_at.is_(None),
                    t.outbox.c.cancelled_at.is_(None),
                )
            )
        return [outbox_row(r) for r in sorted(rows, key=lambda r: int(r["seq"]))]

    async def claim_outbox(
        self,
        relay_id: str,
        now: datetime,
        limit: int = 500,
        reclaim_after: timedelta = timedelta(seconds=10),
        *,
        published: Sequence[int] = (),
    ) -> list[OutboxRow]:
        """Take the due records for one relay to publish, atomically against cancellation: a record
        claimed here is published (at least once) and can no longer be withdrawn. The relay's own
        earlier claims come again (a failed publish is retried), and another relay's after
        ``reclaim_after`` (it died between claiming and publishing). ``published``: the seqs of the
        relay's last batch, now published, marked so in the same transaction (one commit per batch)."""
        c = t.outbox.c
        claimable = or_(c.claimed_at.is_(None), c.claimed_by == relay_id, c.claimed_at <= now - reclaim_after)
        due = (
            select(c.seq)
            .where(
                c.published_at.is_(None),
                c.cancelled_at.is_(None),
                claimable,
                or_(c.not_before.is_(None), c.not_before <= now),
            )
            .order_by(c.seq)
            .limit(limit)
        )
        async with self._write() as tx:
            if published:
                await _mark(tx, published, now)
            # One statement: the due rows chosen and claimed, and returned. The same conditions again in the
            # UPDATE: on PostgreSQL a cancellation committed since the sub-select chose the row is re-checked
            # there (READ COMMITTED), and a row it cancelled is not claimed.
            rows = await tx._rows(
                update(t.outbox)
                .where(c.seq.in_(due.scalar_subquery()), c.published_at.is_(None), c.cancelled_at.is_(None), claimable)
                .values(claimed_at=now, claimed_by=relay_id)
                .returning(*t.outbox.c)
            )
        return sorted((outbox_row(r) for r in rows), key=lambda r: r.seq)

    async def mark_published(self, seqs: list[int], at: datetime) -> None:
        if not seqs:
            return
        async with self._write() as tx:
            await _mark(tx, seqs, at)


async def _mark(tx: Writes, seqs: Sequence[int], at: datetime) -> None:
    """Mark these records published (one UPDATE per 500: under every backend's bound-parameter limit); a
    record already marked keeps its first time."""
    c = t.outbox.c
    for i in range(0, len(seqs), 500):
        await tx.conn.execute(
            update(t.outbox).where(c.seq.in_(list(seqs[i : i + 500])), c.published_at.is_(None)).values(published_at=at)
        )
