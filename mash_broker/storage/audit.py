"""The audited log's queries: entries in tree order, their recorded leaf hashes, signed checkpoints, and the
stored copies of messages whose hashes the log records (read a batch or a page at a time)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, RowMapping, TextClause, bindparam, or_, select, text

from mash_broker.core.audit.copies import ConsentCopy, QuarantinedCopy
from mash_broker.core.audit.leaves import RawRow
from mash_broker.core.audit.log import Checkpoint, Entry
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes

PAGE = 5000
_ENTRY = (
    t.events.c.seq,
    t.events.c.at,
    t.events.c.event_type,
    t.events.c.message_id,
    t.events.c.detail,
    t.events.c.leaf_hash,
)


# The raw rows `mash audit verify` hashes (``core.audit.leaves``): ``at`` spelt as ``iso_utc`` spells it by the
# database itself (SQLite keeps SQLAlchemy's "YYYY-MM-DD HH:MM:SS.ffffff" text of the UTC time; anything else
# gives NULL and the row is checked in full), the detail as its stored text, no type processing.
_RAW = {
    "sqlite": text(
        "SELECT seq, CASE WHEN length(at) = 26 AND substr(at, 11, 1) = ' ' "
        "THEN substr(at, 1, 10) || 'T' || substr(at, 12) || 'Z' END, "
        "event_type, message_id, detail, leaf_hash FROM events WHERE seq > :after ORDER BY seq LIMIT :page"
    ),
    "postgresql": text(
        "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        "event_type, message_id, detail::text, leaf_hash FROM events WHERE seq > :after ORDER BY seq LIMIT :page"
    ),
}


def _leaves_after(after_seq: int) -> Any:
    return select(t.events.c.seq, t.events.c.leaf_hash).where(t.events.c.seq > after_seq).order_by(t.events.c.seq)


# The stored copies `mash audit verify` checks: each table's id column and the columns holding a copy.
_COPIES: dict[str, tuple[Column[Any], frozenset[str]]] = {
    "messages": (t.messages.c.message_id, frozenset({"envelope", "content_hash"})),
    "deliveries": (t.deliveries.c.delivery_id, frozenset({"envelope"})),
    "outbox": (t.outbox.c.outbox_id, frozenset({"value"})),
    "policies": (t.policies.c.version, frozenset({"text", "sha256"})),
}
_IN_CHUNK = 500  # ids per IN (...): well under every backend's bound-parameter limit

_LATEST = select(t.checkpoints).order_by(t.checkpoints.c.checkpoint_id.desc()).limit(1)


def _checkpoint(row: RowMapping) -> Checkpoint:
    return Checkpoint(
        checkpoint_id=int(row["checkpoint_id"]),
        tree_size=int(row["tree_size"]),
        root_hash=row["root_hash"],
        at=row["at"],
        key_id=row["key_id"],
        signature=row["signature"],
    )


def _filter(
    message_id: str | None, start: datetime | None, end: datetime | None, org: str | None
) -> list[ColumnElement[bool]]:
    c = t.events.c
    where: list[ColumnElement[bool]] = []
    if message_id is not None:
        where.append(
            c.message_id == message_id
            if len(message_id) == 36
            else c.message_id.startswith(message_id, autoescape=True)
        )
    if start is not None:
        where.append(c.at >= start)
    if end is not None:
        where.append(c.at < end)
    if org:
        where.append(
            or_(
                c.message_id.in_(select(t.messages.c.message_id).where(t.messages.c.sender_org == org)),
                c.message_id.in_(select(t.deliveries.c.message_id).where(t.deliveries.c.recipient == org)),
            )
        )
    return where


class AuditWrites(Writes):
    async def add_checkpoint(self, *, tree_size: int, root_hash: str, at: datetime, key_id: str, signature: str) -> int:
        """Record a signed tree head; returns its checkpoint id."""
        res = await self.conn.execute(
            t.checkpoints.insert()
            .values(tree_size=tree_size, root_hash=root_hash, at=at, key_id=key_id, signature=signature)
            .returning(t.checkpoints.c.checkpoint_id)
        )
        return int(res.scalar_one())

    async def leaf_hashes_after(self, after_seq: int) -> list[tuple[int, str]]:
        """(seq, stored leaf hash) of every entry after ``after_seq``, in seq order."""
        return [(int(seq), str(leaf)) for seq, leaf in (await self.conn.execute(_leaves_after(after_seq))).all()]

    async def latest_checkpoint(self) -> Checkpoint | None:
        row = (await self.conn.execute(_LATEST)).mappings().first()
        return _checkpoint(row) if row is not None else None


class AuditReads(Reads):
    async def log_entries(
        self,
        *,
        message_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        org: str | None = None,
        page: int = PAGE,
    ) -> AsyncIterator[list[Entry]]:
        """Entries in seq order, a page at a time: every one, or those about a message (its full id
        or a prefix), in ``[start, end)``, or about messages ``org`` sent or was delivered."""
        where = _filter(message_id, start, end, org)
        after: int | None = None
        while True:
            q = select(*_ENTRY).order_by(t.events.c.seq).limit(page)
            if after is not None:
                q = q.where(t.events.c.seq > after)
            if where:
                q = q.where(*where)
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q)).all()
            if not rows:
                return
            yield [Entry(*r) for r in rows]
            after = rows[-1][0]

    async def raw_entry_pages(self, *, page: int = PAGE) -> AsyncIterator[list[RawRow]]:
        """Every entry in seq order as its raw stored columns (``core.audit.leaves.RawRow``), a page at a time."""
        query: TextClause = _RAW[self.engine.dialect.name]
        after = 0
        while True:
            async with self.engine.connect() as conn:
                rows: list[Any] = list((await conn.execute(query, {"after": after, "page": page})).all())
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    async def entries_between(self, first_seq: int, last_seq: int) -> list[Entry]:
        """The entries with seq in ``first_seq..last_seq``, in seq order."""
        c = t.events.c
        q = select(*_ENTRY).where(c.seq >= first_seq, c.seq <= last_seq).order_by(c.seq)
        async with self.engine.connect() as conn:
            return [Entry(*r) for r in (await conn.execute(q)).all()]

    async def leaf_hashes_after(self, after_seq: int) -> list[tuple[int, str]]:
        """(seq, stored leaf hash) of every entry after ``after_seq``, in seq order."""
        async with self.engine.connect() as conn:
            return [(int(seq), str(leaf)) for seq, leaf in (await conn.execute(_leaves_after(after_seq))).all()]

    async def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        return [_checkpoint(r) for r in await self._all(select(t.checkpoints).order_by(t.checkpoints.c.checkpoint_id))]

    async def latest_checkpoint(self) -> Checkpoint | None:
        row = await self._first(_LATEST)
        return _checkpoint(row) if row is not None else None

    async def stored_texts(self, table: str, column: str, keys: Collection[str]) -> dict[str, str]:
        """``column`` of the rows of ``table`` with these ids, by id (a missing row is left out)."""
        key_col, columns = _COPIES[table]
        if column not in columns:
            raise KeyError(f"{table}.{column} is not a stored copy")
        value = t.metadata.tables[table].c[column]
        ids, found = sorted(keys), {}
        q = select(key_col, value).where(key_col.in_(bindparam("ids", expanding=True)))
        async with self.engine.connect() as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                found.update(
                    {str(k): str(v) for k, v in (await conn.execute(q, {"ids": ids[i : i + _IN_CHUNK]})).all()}
                )
        return found

    async def quarantined_copies(self, *, page: int = PAGE) -> AsyncIterator[list[QuarantinedCopy]]:
        """Quarantine rows in the order they were written, a page at a time."""
        c, after = t.quarantine.c, 0
        while True:
            q = (
                select(c.item_id, c.message_id, c.topic, c.reason_code, c.raw)
                .where(c.item_id > after)
                .order_by(c.item_id)
                .limit(page)
            )
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q)).all()
            if not rows:
                return
            yield [QuarantinedCopy(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
            after = int(rows[-1][0])

    async def consent_copies(self, *, page: int = PAGE) -> AsyncIterator[list[ConsentCopy]]:
        """Consent rows with their message's stored envelope (None if that row is gone), a page at a time."""
        c, m, after = t.consents.c, t.messages.c, 0
        while True:
            q = (
                select(c.row_id, c.message_id, c.payload, m.envelope)
                .select_from(t.consents.outerjoin(t.messages, m.message_id == c.message_id))
                .where(c.row_id > after)
                .order_by(c.row_id)
                .limit(page)
            )
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q)).all()
            if not rows:
                return
            yield [ConsentCopy(int(r[0]), r[1], r[2], r[3]) for r in rows]
            after = int(rows[-1][0])
