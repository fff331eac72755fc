"""A ledger transaction: domain-named writes (messages, decisions, deliveries, queues, the audited log)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ClauseElement, TextClause, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.util import find_tables

from mash_broker.contracts import PolicyError
from mash_broker.core.audit.entries import as_stored, canonical_detail, iso_utc, joined_entry
from mash_broker.core.audit.merkle import leaf_hash
from mash_broker.storage import schema as t
from mash_broker.storage.alerts import AlertWrites
from mash_broker.storage.audit import AuditWrites
from mash_broker.storage.clocks import ClockWrites
from mash_broker.storage.consents import ConsentWrites
from mash_broker.storage.corrections import CorrectionWrites
from mash_broker.storage.directory import DirectoryUpdate, DirectoryWrites
from mash_broker.storage.health import HealthWrites
from mash_broker.storage.outbox import OutboxWrites
from mash_broker.storage.projections import ProjectionWrites
from mash_broker.storage.republish import RepublishWrites
from mash_broker.storage.web import WebWrites

EVENT_LOG_LOCK = 0x6D6173685F6C6F67  # "mash_log": the PostgreSQL advisory lock that orders event appends
# One compiled statement for every append (SQLAlchemy caches its compiled form): the detail is bound as the
# stored RFC 8785 text itself (``JsonText``), never re-serialised.
_INSERT_EVENT = t.events.insert().values(
    seq=bindparam("seq"),
    at=bindparam("at", type_=t.events.c.at.type),
    event_type=bindparam("event_type"),
    message_id=bindparam("message_id"),
    detail=bindparam("detail", type_=t.JsonText()),
    leaf_hash=bindparam("leaf_hash"),
)

_INSERT_MESSAGE = t.messages.insert()
_INSERT_DECISION = t.decisions.insert()
_INSERT_DELIVERY = t.deliveries.insert()


class _Flushing:
    """The transaction's connection as the query mixins use it: before a statement that reads or writes a
    table with rows still buffered (``Tx._insert``), those rows are written first, so every statement sees
    everything the transaction wrote before it."""

    def __init__(self, tx: Tx, conn: AsyncConnection) -> None:
        self._tx, self._conn = tx, conn

    async def execute(self, statement: Any, *args: Any, **kw: Any) -> Any:
        await self._tx._flush_for(statement)
        return await self._conn.execute(statement, *args, **kw)

    async def scalar(self, statement: Any, *args: Any, **kw: Any) -> Any:
        await self._tx._flush_for(statement)
        return await self._conn.scalar(statement, *args, **kw)

    async def scalars(self, statement: Any, *args: Any, **kw: Any) -> Any:
        await self._tx._flush_for(statement)
        return await self._conn.scalars(statement, *args, **kw)

    async def stream(self, statement: Any, *args: Any, **kw: Any) -> Any:
        await self._tx._flush_for(statement)
        return await self._conn.stream(statement, *args, **kw)

    async def exec_driver_sql(self, *args: Any, **kw: Any) -> Any:
        await self._tx.flush()
        return await self._conn.exec_driver_sql(*args, **kw)

    async def run_sync(self, *args: Any, **kw: Any) -> Any:
        await self._tx.flush()
        return await self._conn.run_sync(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class Tx(
    OutboxWrites,
    ConsentWrites,
    DirectoryWrites,
    ClockWrites,
    AuditWrites,
    WebWrites,
    ProjectionWrites,
    AlertWrites,
    RepublishWrites,
    HealthWrites,
    CorrectionWrites,
):
    """Writes inside one ledger transaction: all of them land, or none."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._raw = conn
        self.conn = cast(AsyncConnection, _Flushing(self, conn))
        # Inserts into append-only tables, buffered and written as one executemany per table: before any
        # statement touching that table (``_Flushing``) and before commit (``Ledger.transaction``).
        self._pending: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}
        # Messages this transaction wrote or read ahead (``prefetch_messages``): id -> (hash, kind, sender), and
        # the ids it read ahead and found absent; outbox ids it wrote.
        self._messages: dict[str, tuple[str, str, str]] = {}
        self._absent: set[str] = set()
        self._outbox_ids: set[str] = set()
        self._log_locked = False
        self._last_seq: int | None = None  # the log's last seq, once read under the lock (appends follow it)
        self._school_urns: frozenset[str] | None = None  # the directory as this transaction read it
        self.appended = False  # an event was appended: the ledger pokes its projectors after commit

    async def _insert(self, statement: Any, params: dict[str, Any]) -> None:
        """Buffer one row for ``statement`` (an INSERT into an append-only table)."""
        table = statement.table
        if table not in self._pending:
            self._pending[table] = (statement, [])
        self._pending[table][1].append(params)

    async def flush(self) -> None:
        """Write every buffered row: one executemany per table, in the order the tables were first written."""
        while self._pending:
            table = next(iter(self._pending))
            statement, rows = self._pending.pop(table)
            await self._raw.execute(statement, rows)

    async def _flush_for(self, statement: Any) -> None:
        if not self._pending:
            return
        if not isinstance(statement, ClauseElement) or isinstance(statement, TextClause):
            await self.flush()  # raw SQL: it may touch anything
            return
        if any(table in self._pending for table in find_tables(statement, include_crud=True, include_joins=True)):
            await self.flush()

    async def prefetch_messages(self, message_ids: Iterable[uuid.UUID]) -> None:
        """Read the recorded hash, kind and sender of these messages in one query per 500 ids, so that
        ``message_hash`` and ``message_sender`` answer a batch's records without a query each."""
        ids = list(dict.fromkeys(str(i) for i in message_ids if str(i) not in self._messages))
        c = t.messages.c
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = select(c.message_id, c.content_hash, c.kind, c.sender_org).where(c.message_id.in_(chunk))
            found = {row[0]: (row[1], row[2], row[3]) for row in (await self._raw.execute(q)).all()}
            self._messages.update(found)
            self._absent.update(mid for mid in chunk if mid not in found)

    async def message_hash(self, message_id: uuid.UUID) -> str | None:
        mid = str(message_id)
        if (buffered := self._messages.get(mid)) is not None:
            return buffered[0]
        if mid in self._absent:
            return None
        q = select(t.messages.c.content_hash).where(t.messages.c.message_id == mid)
        return (await self._raw.execute(q)).scalar_one_or_none()  # the buffer holds no row for it: no flush

    async def message_sender(self, message_id: uuid.UUID) -> tuple[str, str] | None:
        """A received message's kind and sender, or None if the ledger has no such message."""
        mid = str(message_id)
        if (buffered := self._messages.get(mid)) is not None:
            return buffered[1], buffered[2]
        if mid in self._absent:
            return None
        q = select(t.messages.c.kind, t.messages.c.sender_org).where(t.messages.c.message_id == mid)
        row = (await self._raw.execute(q)).first()
        return (row[0], row[1]) if row else None

    async def outbox_has(self, outbox_id: uuid.UUID) -> bool:
        oid = str(outbox_id)
        if oid in self._outbox_ids:
            return True
        q = select(t.outbox.c.seq).where(t.outbox.c.outbox_id == oid)
        return (await self._raw.execute(q)).first() is not None

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
        await super().enqueue(
            outbox_id=outbox_id, topic=topic, key=key, value=value, headers=headers, at=at, not_before=not_before
        )
        self._outbox_ids.add(str(outbox_id))

    async def insert_message(
        self,
        *,
        message_id: uuid.UUID,
        kind: str,
        sender_org: str,
        correlation_id: uuid.UUID,
        topic: str,
        content_hash: str,
        received_at: datetime,
        envelope: str,
        sender_local_id: str | None = None,
    ) -> None:
        mid = str(message_id)
        await self._insert(
            _INSERT_MESSAGE,
            {
                "message_id": mid,
                "kind": kind,
                "sender_org": sender_org,
                "sender_local_id": sender_local_id,
                "correlation_id": str(correlation_id),
                "topic": topic,
                "content_hash": content_hash,
                "received_at": received_at,
                "envelope": envelope,
            },
        )
        self._messages[mid] = (content_hash, kind, sender_org)
        self._absent.discard(mid)

    async def insert_decision(
        self,
        *,
        message_id: uuid.UUID,
        verdict: str,
        reasons: list[str],
        policy_version: str,
        decided_at: datetime,
        refer_to: str | None,
        trace: list[str],
    ) -> None:
        await self._insert(
            _INSERT_DECISION,
            {
                "message_id": str(message_id),
                "verdict": verdict,
                "reasons": reasons,
                "policy_version": policy_version,
                "decided_at": decided_at,
                "refer_to": refer_to,
                "trace": trace,
            },
        )

    async def insert_delivery(
        self,
        *,
        delivery_id: uuid.UUID,
        message_id: uuid.UUID,
        recipient: str,
        purpose: str,
        notify_by: datetime | None,
        created_at: datetime,
        envelope: str,
        consent_id: uuid.UUID | None = None,
    ) -> None:
        await self._insert(
            _INSERT_DELIVERY,
            {
                "delivery_id": str(delivery_id),
                "message_id": str(message_id),
                "recipient": recipient,
                "purpose": purpose,
                "notify_by": notify_by,
                "created_at": created_at,
                "envelope": envelope,
                "consent_id": str(consent_id) if consent_id else None,
            },
        )

    async def update_decision(self, message_id: uuid.UUID, *, verdict: str, reasons: list[str]) -> None:
        await self.conn.execute(
            update(t.decisions)
            .where(t.decisions.c.message_id == str(message_id))
            .values(verdict=verdict, reasons=reasons)
        )

    async def add_decision_reason(self, message_id: uuid.UUID, reason: str) -> None:
        """Append a reason to a decision that otherwise stands (e.g. one of its shares was withdrawn)."""
        q = select(t.decisions.c.reasons).where(t.decisions.c.message_id == str(message_id))
        reasons = list((await self.conn.execute(q)).scalar_one())
        if reason not in reasons:
            await self.conn.execute(
                update(t.decisions)
                .where(t.decisions.c.message_id == str(message_id))
                .values(reasons=[*reasons, reason])
            )

    async def record_policy(self, *, version: str, sha256: str, source: str, text: str, at: datetime) -> bool:
        """Record a policy version; False if already recorded with this content. A version reused
        for other content is refused: a changed policy must carry a new version."""
        q = select(t.policies.c.sha256).where(t.policies.c.version == version)
        existing = (await self.conn.execute(q)).scalar_one_or_none()
        if existing == sha256:
            return False
        if existing is not None:
            raise PolicyError(
                f"policy version {version} is already recorded with other content: "
                "give the changed policy a new version",
                record=source,
                field="version",
            )
        await self.conn.execute(
            t.policies.insert().values(version=version, sha256=sha256, loaded_at=at, source=source, text=text)
        )
        return True

    async def add_queue_item(
        self, *, queue: str, message_id: uuid.UUID, reason_code: str, detail: str, at: datetime
    ) -> None:
        await self.conn.execute(
            t.queue_items.insert().values(
                queue=queue, message_id=str(message_id), reason_code=reason_code, detail=detail, created_at=at
            )
        )

    async def add_quarantine(
        self,
        *,
        message_id: uuid.UUID | None,
        sender_org: str | None,
        topic: str,
        reason_code: str,
        detail: str,
        raw: str,
        at: datetime,
    ) -> None:
        # PostgreSQL text cannot hold NUL; store it as U+FFFD on every backend, as undecodable bytes are.
        await self.conn.execute(
            t.quarantine.insert().values(
                message_id=str(message_id) if message_id else None,
                sender_org=sender_org,
                topic=topic,
                reason_code=reason_code,
                detail=detail.replace("\x00", "\ufffd"),
                raw=raw.replace("\x00", "\ufffd"),
                created_at=at,
            )
        )

    async def event(self, event_type: str, message_id: uuid.UUID | str | None, at: datetime, **detail: Any) -> None:
        """Append an entry to the audited log: seq is the next position, leaf_hash its RFC 6962 hash."""
        mid = str(message_id) if message_id else None
        stored = canonical_detail(as_stored(detail))  # stored as this text: verify hashes the columns as stored
        await self.lock_event_log()
        if self._last_seq is None:  # read once: the lock is held to commit, so no one else appends meanwhile
            self._last_seq = (await self._raw.execute(select(func.max(t.events.c.seq)))).scalar_one() or 0
        seq = self._last_seq + 1
        await self._insert(
            _INSERT_EVENT,
            {
                "seq": seq,
                "at": at,
                "event_type": event_type,
                "message_id": mid,
                "detail": stored,
                "leaf_hash": leaf_hash(joined_entry(iso_utc(at), event_type, mid, stored)).hex(),
            },
        )
        self._last_seq = seq
        self.appended = True

    async def lock_event_log(self) -> None:
        """Order event appends by commit (the Merkle tree's order is seq order, gap-free): on PostgreSQL
        a transaction-scoped advisory lock, taken once, held to commit (READ COMMITTED then sees every
        earlier append); SQLite write transactions already hold the database lock (BEGIN IMMEDIATE)."""
        if not self._log_locked and self.conn.dialect.name == "postgresql":
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})
        self._log_locked = True

    async def mark_delivered(self, delivery_id: uuid.UUID, at: datetime) -> bool:
        """Record a recipient system's receipt; False if it was already recorded (a redelivery)."""
        res = await self.conn.execute(
            update(t.deliveries)
            .where(
                t.deliveries.c.delivery_id == str(delivery_id),
                t.deliveries.c.delivered_at.is_(None),
            )
            .values(delivered_at=at)
        )
        return bool(res.rowcount)

    async def mark_read(self, delivery_id: uuid.UUID, by: str, at: datetime) -> bool:
        """Record that a person read a delivery; False if it was already read."""
        res = await self.conn.execute(
            update(t.deliveries)
            .where(
                t.deliveries.c.delivery_id == str(delivery_id),
                t.deliveries.c.read_at.is_(None),
                t.deliveries.c.withdrawn_at.is_(None),
            )
            .values(read_at=at, read_by=by)
        )
        return bool(res.rowcount)

    async def known_school_urns(self) -> frozenset[str]:
        """Every school the directory knows, read once per transaction (the gate asks for every message of a
        batch); read again after this transaction changes the directory."""
        if self._school_urns is None:
            self._school_urns = await super().known_school_urns()
        return self._school_urns

    async def apply_directory(self, change: DirectoryUpdate, at: datetime) -> None:
        self._school_urns = None
        await super().apply_directory(change, at)

    async def replace_directory(
        self, schools: Iterable[tuple[str, str, str, list[tuple[str, str]]]], at: datetime
    ) -> int:
        self._school_urns = None
        return await super().replace_directory(schools, at)
