"""The ledger: one async SQLAlchemy engine, transactions with domain-named writes, and the queries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mash_broker.contracts import PolicyError
from mash_broker.core.audit.entries import as_stored, entry_leaf_hash
from mash_broker.storage import schema as t

EVENT_LOG_LOCK = 0x6D6173685F6C6F67  # "mash_log": the PostgreSQL advisory lock that orders event appends


@dataclass(frozen=True)
class OutboxRow:
    """One record waiting to be published by the relay."""

    seq: int
    outbox_id: str
    topic: str
    key: str | None
    value: str
    headers: dict[str, str]


class Tx:
    """Writes inside one ledger transaction: all of them land, or none."""

    def __init__(self, conn: AsyncConnection, hooks: Sequence[EventHook] = ()) -> None:
        self.conn = conn
        self._log_locked = False
        self._hooks = hooks
        self._in_hook = False

    async def known_school_urns(self) -> frozenset[str]:
        return frozenset((await self.conn.execute(select(t.schools.c.urn))).scalars())

    async def message_hash(self, message_id: uuid.UUID) -> str | None:
        q = select(t.messages.c.content_hash).where(t.messages.c.message_id == str(message_id))
        return (await self.conn.execute(q)).scalar_one_or_none()

    async def message_sender(self, message_id: uuid.UUID) -> tuple[str, str] | None:
        """A received message's kind and sender, or None if the ledger has no such message."""
        q = select(t.messages.c.kind, t.messages.c.sender_org).where(t.messages.c.message_id == str(message_id))
        row = (await self.conn.execute(q)).first()
        return (row[0], row[1]) if row else None

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
        await self.conn.execute(
            t.messages.insert().values(
                message_id=str(message_id),
                kind=kind,
                sender_org=sender_org,
                sender_local_id=sender_local_id,
                correlation_id=str(correlation_id),
                topic=topic,
                content_hash=content_hash,
                received_at=received_at,
                envelope=envelope,
            )
        )

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
        await self.conn.execute(
            t.decisions.insert().values(
                message_id=str(message_id),
                verdict=verdict,
                reasons=reasons,
                policy_version=policy_version,
                decided_at=decided_at,
                refer_to=refer_to,
                trace=trace,
            )
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
        await self.conn.execute(
            t.deliveries.insert().values(
                delivery_id=str(delivery_id),
                message_id=str(message_id),
                recipient=recipient,
                purpose=purpose,
                notify_by=notify_by,
                created_at=created_at,
                envelope=envelope,
                consent_id=str(consent_id) if consent_id else None,
            )
        )

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
        await self.conn.execute(
            t.outbox.insert().values(
                outbox_id=str(outbox_id),
                topic=topic,
                key=key,
                value=value,
                headers=headers,
                created_at=at,
                not_before=not_before,
                published_at=None,
            )
        )

    async def record_consent(
        self,
        *,
        message_id: uuid.UUID,
        child_keys: Iterable[str],
        record_kind: str,
        record_id: uuid.UUID,
        status: str,
        received_at: datetime,
        payload: str,
    ) -> None:
        for key in sorted(child_keys):
            await self.conn.execute(
                t.consents.insert().values(
                    message_id=str(message_id),
                    child_key=key,
                    record_kind=record_kind,
                    record_id=str(record_id),
                    status=status,
                    received_at=received_at,
                    payload=payload,
                )
            )

    async def consent_payloads(self, child_keys: Iterable[str], as_of: datetime | None = None) -> list[str]:
        """Consent and dispensation payloads (JSON) for any of these keys, in the order received."""
        return await consent_payloads(self.conn, child_keys, as_of)

    async def consent_deliveries(self, consent_id: uuid.UUID) -> list[dict[str, Any]]:
        """Deliveries that relied on this consent and have not been withdrawn."""
        q = select(t.deliveries).where(
            t.deliveries.c.consent_id == str(consent_id), t.deliveries.c.withdrawn_at.is_(None)
        )
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def cancel_unpublished(self, outbox_id: uuid.UUID, at: datetime) -> bool:
        """Stop an outbox record that has not been published yet; False if it already went."""
        res = await self.conn.execute(
            update(t.outbox)
            .where(
                t.outbox.c.outbox_id == str(outbox_id),
                t.outbox.c.published_at.is_(None),
                t.outbox.c.claimed_at.is_(None),
                t.outbox.c.cancelled_at.is_(None),
            )
            .values(cancelled_at=at)
        )
        return bool(res.rowcount)

    async def mark_withdrawn(self, delivery_id: uuid.UUID, at: datetime) -> None:
        await self.conn.execute(
            update(t.deliveries).where(t.deliveries.c.delivery_id == str(delivery_id)).values(withdrawn_at=at)
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

    async def live_deliveries(self, message_id: uuid.UUID) -> int:
        """How many of a message's deliveries have not been withdrawn."""
        q = (
            select(func.count())
            .select_from(t.deliveries)
            .where(t.deliveries.c.message_id == str(message_id), t.deliveries.c.withdrawn_at.is_(None))
        )
        return int((await self.conn.execute(q)).scalar_one())

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

    async def outbox_has(self, outbox_id: uuid.UUID) -> bool:
        q = select(t.outbox.c.seq).where(t.outbox.c.outbox_id == str(outbox_id))
        return (await self.conn.execute(q)).first() is not None

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
        stored = as_stored(detail)
        await self.lock_event_log()
        last = (await self.conn.execute(select(func.max(t.events.c.seq)))).scalar_one()
        await self.conn.execute(
            t.events.insert().values(
                seq=(last or 0) + 1,
                at=at,
                event_type=event_type,
                message_id=mid,
                detail=stored,
                leaf_hash=entry_leaf_hash(at, event_type, mid, stored),
            )
        )
        if self._hooks and not self._in_hook:  # events a hook writes do not call hooks again
            self._in_hook = True
            try:
                for hook in self._hooks:
                    await hook(self, event_type, mid, at, stored)
            finally:
                self._in_hook = False

    async def lock_event_log(self) -> None:
        """Order event appends by commit (the Merkle tree's order is seq order, gap-free): on PostgreSQL
        a transaction-scoped advisory lock, taken once, held to commit (READ COMMITTED then sees every
        earlier append); SQLite write transactions already hold the database lock (BEGIN IMMEDIATE)."""
        if not self._log_locked and self.conn.dialect.name == "postgresql":
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})
        self._log_locked = True

    async def add_checkpoint(self, *, tree_size: int, root_hash: str, at: datetime, key_id: str, signature: str) -> int:
        """Record a signed tree head; returns its checkpoint id."""
        res = await self.conn.execute(
            t.checkpoints.insert()
            .values(
                tree_size=tree_size,
                root_hash=root_hash,
                at=at,
                key_id=key_id,
                signature=signature,
            )
            .returning(t.checkpoints.c.checkpoint_id)
        )
        return int(res.scalar_one())

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
            .where(
                t.clocks.c.clock_id == str(clock_id),
                t.clocks.c.stopped_at.is_(None),
            )
            .values(stopped_at=at)
            .returning(t.clocks.c.due_at)
        )
        due: datetime | None = res.scalar_one_or_none()
        return due

    async def clocks_to_flag(self, now: datetime) -> list[dict[str, Any]]:
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
        return [dict(r) for r in (await self.conn.execute(q)).mappings()]

    async def flag_clock(self, clock_id: str, flag: str, at: datetime) -> bool:
        """Set ``warned_at`` or ``breached_at`` once; False if it was already set (by any keeper)."""
        if flag not in ("warned_at", "breached_at"):
            raise ValueError(f"not a clock flag: {flag}")
        column = t.clocks.c[flag]
        res = await self.conn.execute(
            update(t.clocks).where(t.clocks.c.clock_id == clock_id, column.is_(None)).values({flag: at})
        )
        return bool(res.rowcount)

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
            )
            .values(read_at=at, read_by=by)
        )
        return bool(res.rowcount)

    async def replace_directory(
        self, schools: Iterable[tuple[str, str, str, list[tuple[str, str]]]], at: datetime
    ) -> int:
        """Upsert schools and replace each loaded school's Key Adults. Returns schools loaded."""
        n = 0
        for urn, name, la_code, adults in schools:
            await self.conn.execute(t.schools.delete().where(t.schools.c.urn == urn))
            await self.conn.execute(t.key_adults.delete().where(t.key_adults.c.urn == urn))
            await self.conn.execute(t.schools.insert().values(urn=urn, name=name, la_code=la_code, loaded_at=at))
            for adult_name, email in adults:
                await self.conn.execute(t.key_adults.insert().values(urn=urn, email=email, name=adult_name))
            n += 1
        return n


# Called inside the transaction after each audited event is appended (e.g. the clock keeper starting
# and stopping clocks), so what it writes is exactly as durable as the event.
EventHook = Callable[["Tx", str, "str | None", datetime, dict[str, Any]], Awaitable[None]]


class Ledger:
    """The durable record. SQLite file by default, PostgreSQL when configured."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._hooks: list[EventHook] = []

    def on_event(self, hook: EventHook) -> None:
        """Run ``hook`` in every write transaction after each event it appends."""
        self._hooks.append(hook)

    @classmethod
    async def open(cls, url: str, *, create: bool = True, **engine_kw: Any) -> Ledger:
        # hide_parameters: a database error must never carry envelopes or names into a log line.
        engine = create_async_engine(url, hide_parameters=True, **engine_kw)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        ledger = cls(engine)
        if create:
            async with engine.begin() as conn:
                await conn.run_sync(t.metadata.create_all)
        return ledger

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Tx]:
        """Read-only access through the Tx queries (no write lock); nothing written here is kept."""
        async with self.engine.connect() as conn:
            yield Tx(conn)
            await conn.rollback()

    async def find_message_id(self, prefix: str) -> str | None:
        """A message id from its full form or a unique prefix of at least 8 characters."""
        wanted = prefix.strip().lower()
        if len(wanted) < 8:
            return None
        rows = await self._all(
            select(t.messages.c.message_id).where(t.messages.c.message_id.startswith(wanted)).limit(2)
        )
        return rows[0]["message_id"] if len(rows) == 1 else None

    async def decided_messages(
        self, *, received_from: datetime | None = None, received_to: datetime | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Decided messages with their envelopes and decisions, oldest first (for what-if and replay):
        all of them, or those received in [``received_from``, ``received_to``) and of ``kind``."""
        q = (
            select(
                t.messages.c.message_id,
                t.messages.c.kind,
                t.messages.c.envelope,
                t.messages.c.received_at,
                t.decisions.c.verdict,
                t.decisions.c.reasons,
                t.decisions.c.decided_at,
                t.decisions.c.policy_version,
            )
            .join(t.decisions, t.decisions.c.message_id == t.messages.c.message_id)
            .order_by(t.messages.c.received_at, t.messages.c.message_id)
        )
        if received_from is not None:
            q = q.where(t.messages.c.received_at >= received_from)
        if received_to is not None:
            q = q.where(t.messages.c.received_at < received_to)
        if kind is not None:
            q = q.where(t.messages.c.kind == kind)
        return [dict(r) for r in await self._all(q)]

    async def deliveries_of(self, message_id: str) -> list[dict[str, Any]]:
        q = select(t.deliveries).where(t.deliveries.c.message_id == message_id).order_by(t.deliveries.c.recipient)
        return [dict(r) for r in await self._all(q)]

    async def events_of(self, message_id: str) -> list[dict[str, Any]]:
        q = select(t.events).where(t.events.c.message_id == message_id).order_by(t.events.c.seq)
        return [dict(r) for r in await self._all(q)]

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction. On SQLite it takes the write lock at BEGIN (see _sqlite_begin)."""
        async with self.engine.connect() as conn:
            conn.sync_connection.info["write"] = True  # type: ignore[union-attr]
            try:
                async with conn.begin():
                    yield Tx(conn, tuple(self._hooks))
            finally:
                conn.sync_connection.info.pop("write", None)  # type: ignore[union-attr]

    async def _all(self, q: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(q)).mappings().all())

    # -- queries -------------------------------------------------------------------------------

    async def known_school_urns(self) -> frozenset[str]:
        return frozenset(r["urn"] for r in await self._all(select(t.schools.c.urn)))

    async def school(self, urn: str) -> dict[str, Any] | None:
        rows = await self._all(select(t.schools).where(t.schools.c.urn == urn))
        return dict(rows[0]) if rows else None

    async def key_adults(self, urn: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all(select(t.key_adults).where(t.key_adults.c.urn == urn))]

    async def receipts_for(self, message_ids: Iterable[uuid.UUID]) -> dict[str, dict[str, Any]]:
        """The gate's receipts: which of these messages are in the ledger, and what was decided."""
        ids = [str(m) for m in message_ids]
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            q = (
                select(t.messages.c.message_id, t.decisions.c.verdict, t.decisions.c.reasons, t.decisions.c.refer_to)
                .join(t.decisions, t.decisions.c.message_id == t.messages.c.message_id, isouter=True)
                .where(t.messages.c.message_id.in_(ids[i : i + 500]))
            )
            found.update({r["message_id"]: dict(r) for r in await self._all(q)})
        # Refused before it was recorded (a signature, key or contract problem): the quarantine says why.
        missing = [m for m in ids if m not in found]
        for i in range(0, len(missing), 500):
            q = (
                select(t.quarantine.c.message_id, t.quarantine.c.reason_code)
                .where(t.quarantine.c.message_id.in_(missing[i : i + 500]))
                .order_by(t.quarantine.c.item_id)
            )
            for r in await self._all(q):
                found.setdefault(
                    r["message_id"],
                    {
                        "message_id": r["message_id"],
                        "verdict": "rejected",
                        "reasons": [r["reason_code"]],
                        "refer_to": None,
                    },
                )
        return found

    async def sender_status(self, sender_org: str | None = None) -> list[dict[str, Any]]:
        """Each message a sender sent: the gate's verdict and, per recipient, delivered and read times."""
        q = (
            select(
                t.messages.c.message_id,
                t.messages.c.sender_org,
                t.messages.c.sender_local_id,
                t.messages.c.received_at,
                t.decisions.c.verdict,
                t.decisions.c.reasons,
                t.deliveries.c.recipient,
                t.deliveries.c.notify_by,
                t.deliveries.c.delivered_at,
                t.deliveries.c.read_at,
                t.deliveries.c.read_by,
            )
            .join(t.decisions, t.decisions.c.message_id == t.messages.c.message_id, isouter=True)
            .join(t.deliveries, t.deliveries.c.message_id == t.messages.c.message_id, isouter=True)
            .order_by(t.messages.c.received_at, t.messages.c.message_id)
        )
        if sender_org:
            q = q.where(t.messages.c.sender_org == sender_org)
        return [dict(r) for r in await self._all(q)]

    async def deliveries_for(self, recipient: str) -> list[dict[str, Any]]:
        q = (
            select(t.deliveries)
            .where(t.deliveries.c.recipient == recipient)
            .order_by(t.deliveries.c.created_at.desc(), t.deliveries.c.delivery_id)
        )
        return [dict(r) for r in await self._all(q)]

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        rows = await self._all(select(t.deliveries).where(t.deliveries.c.delivery_id == delivery_id))
        return dict(rows[0]) if rows else None

    async def all_deliveries(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all(select(t.deliveries).order_by(t.deliveries.c.created_at))]

    async def queue(self, queue: str | None = None, *, open_only: bool = True) -> list[dict[str, Any]]:
        q = select(t.queue_items).order_by(t.queue_items.c.item_id)
        if queue:
            q = q.where(t.queue_items.c.queue == queue)
        if open_only:
            q = q.where(t.queue_items.c.resolved_at.is_(None))
        return [dict(r) for r in await self._all(q)]

    async def quarantined(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._all(select(t.quarantine).order_by(t.quarantine.c.item_id))]

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
        return [_outbox_row(r) for r in await self._all(q)]

    async def unpublished(self, outbox_ids: Iterable[uuid.UUID]) -> list[OutboxRow]:
        """These outbox records, if not yet published nor cancelled (held or not), in order."""
        ids = [str(i) for i in outbox_ids]
        rows: list[Any] = []
        for i in range(0, len(ids), 500):
            rows += await self._all(
                select(t.outbox).where(
                    t.outbox.c.outbox_id.in_(ids[i : i + 500]),
                    t.outbox.c.published_at.is_(None),
                    t.outbox.c.cancelled_at.is_(None),
                )
            )
        return [_outbox_row(r) for r in sorted(rows, key=lambda r: r["seq"])]

    async def claim_outbox(
        self, relay_id: str, now: datetime, limit: int = 500, reclaim_after: timedelta = timedelta(seconds=10)
    ) -> list[OutboxRow]:
        """Take the due records for one relay to publish, atomically against cancellation: a record
        claimed here is published (at least once) and can no longer be withdrawn. The relay's own
        earlier claims come again (a failed publish is retried), and another relay's after
        ``reclaim_after`` (it died between claiming and publishing)."""
        c = t.outbox.c
        claimable = or_(c.claimed_at.is_(None), c.claimed_by == relay_id, c.claimed_at <= now - reclaim_after)
        async with self.transaction() as tx:
            q = (
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
            seqs = [r[0] for r in (await tx.conn.execute(q)).all()]
            if not seqs:
                return []
            # The same conditions again in the UPDATE: on PostgreSQL a cancellation committed since the
            # SELECT is re-checked here (READ COMMITTED), and a row it cancelled is not claimed.
            await tx.conn.execute(
                update(t.outbox)
                .where(c.seq.in_(seqs), c.published_at.is_(None), c.cancelled_at.is_(None), claimable)
                .values(claimed_at=now, claimed_by=relay_id)
            )
            rows = (
                (
                    await tx.conn.execute(
                        select(t.outbox)
                        .where(
                            c.seq.in_(seqs),
                            c.claimed_by == relay_id,
                            c.claimed_at == now,
                            c.cancelled_at.is_(None),
                            c.published_at.is_(None),
                        )
                        .order_by(c.seq)
                    )
                )
                .mappings()
                .all()
            )
        return [_outbox_row(r) for r in rows]

    async def mark_published(self, seqs: list[int], at: datetime) -> None:
        async with self.transaction() as tx:
            await tx.conn.execute(update(t.outbox).where(t.outbox.c.seq.in_(seqs)).values(published_at=at))

    async def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        q = select(t.events).order_by(t.events.c.seq)
        if event_type:
            q = q.where(t.events.c.event_type == event_type)
        return [dict(r) for r in await self._all(q)]

    async def count(self, table: str) -> int:
        async with self.engine.connect() as conn:
            q = select(func.count()).select_from(t.metadata.tables[table])
            return int((await conn.execute(q)).scalar_one())

    async def message(self, message_id: str) -> dict[str, Any] | None:
        q = (
            select(
                t.messages,
                t.decisions.c.verdict,
                t.decisions.c.reasons,
                t.decisions.c.trace,
                t.decisions.c.policy_version,
                t.decisions.c.decided_at,
            )
            .join(t.decisions, t.decisions.c.message_id == t.messages.c.message_id, isouter=True)
            .where(t.messages.c.message_id == message_id)
        )
        rows = await self._all(q)
        return dict(rows[0]) if rows else None


def _outbox_row(r: Any) -> OutboxRow:
    return OutboxRow(
        seq=r["seq"],
        outbox_id=r["outbox_id"],
        topic=r["topic"],
        key=r["key"],
        value=r["value"],
        headers=dict(r["headers"]),
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Several processes share the file (mash up, ingest, school ack): WAL, a busy timeout, and
    # transactions that take the write lock when they begin, so none fails upgrading its lock.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front so they queue on busy_timeout instead of failing to upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


async def consent_payloads(
    conn: AsyncConnection, child_keys: Iterable[str], as_of: datetime | None = None
) -> list[str]:
    """One payload per consent message touching any of the keys, in the order the ledger received them."""
    q = (
        select(
            t.consents.c.message_id,
            func.min(t.consents.c.row_id).label("first"),
            func.min(t.consents.c.payload).label("payload"),
        )
        .where(t.consents.c.child_key.in_(sorted(child_keys)))
        .group_by(t.consents.c.message_id)
        .order_by("first")
    )
    if as_of is not None:
        q = q.where(t.consents.c.received_at <= as_of)
    return [r["payload"] for r in (await conn.execute(q)).mappings()]
