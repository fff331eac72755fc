"""Queries over what the ledger recorded: messages and decisions, deliveries, events, queues, receipts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select

from mash_broker.core.records import (
    DecidedMessage,
    DeliveryRecord,
    EventRecord,
    MessageRecord,
    QuarantinedItem,
    QueueItem,
    Receipt,
    SenderStatusLine,
)
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads
from mash_broker.storage.rows import (
    decided_message,
    delivery_record,
    event_record,
    message_record,
    quarantined_item,
    queue_item,
    receipt,
    sender_status_line,
)

_BATCH = 500


class MessageReads(Reads):
    async def message(self, message_id: str) -> MessageRecord | None:
        """A message and, once decided, its decision."""
        d = t.decisions.c
        q = (
            select(t.messages, d.verdict, d.reasons, d.trace, d.policy_version, d.decided_at)
            .join(t.decisions, d.message_id == t.messages.c.message_id, isouter=True)
            .where(t.messages.c.message_id == message_id)
        )
        row = await self._first(q)
        return message_record(row) if row is not None else None

    async def find_message_id(self, prefix: str) -> str | None:
        """A message id from its full form or a unique prefix of at least 8 characters."""
        wanted = prefix.strip().lower()
        if len(wanted) < 8:
            return None
        q = select(t.messages.c.message_id).where(t.messages.c.message_id.startswith(wanted)).limit(2)
        rows = await self._all(q)
        return str(rows[0]["message_id"]) if len(rows) == 1 else None

    async def decided_messages(
        self, *, received_from: datetime | None = None, received_to: datetime | None = None, kind: str | None = None
    ) -> list[DecidedMessage]:
        """Decided messages with their envelopes and decisions, oldest first (for what-if and replay):
        all of them, or those received in [``received_from``, ``received_to``) and of ``kind``."""
        m, d = t.messages.c, t.decisions.c
        q = (
            select(
                m.message_id, m.kind, m.envelope, m.received_at, d.verdict, d.reasons, d.decided_at, d.policy_version
            )
            .join(t.decisions, d.message_id == m.message_id)
            .order_by(m.received_at, m.message_id)
        )
        if received_from is not None:
            q = q.where(m.received_at >= received_from)
        if received_to is not None:
            q = q.where(m.received_at < received_to)
        if kind is not None:
            q = q.where(m.kind == kind)
        return [decided_message(r) for r in await self._all(q)]

    async def events_of(self, message_id: str) -> list[EventRecord]:
        q = select(t.events).where(t.events.c.message_id == message_id).order_by(t.events.c.seq)
        return [event_record(r) for r in await self._all(q)]

    async def events(self, event_type: str | None = None) -> list[EventRecord]:
        """The audited log's entries in order: all of them, or those of one type."""
        q = select(t.events).order_by(t.events.c.seq)
        if event_type:
            q = q.where(t.events.c.event_type == event_type)
        return [event_record(r) for r in await self._all(q)]

    async def receipts_for(self, message_ids: Iterable[uuid.UUID]) -> dict[str, Receipt]:
        """The gate's receipts: which of these messages are in the ledger, and what was decided."""
        ids = [str(m) for m in message_ids]
        found: dict[str, Receipt] = {}
        d = t.decisions.c
        for i in range(0, len(ids), _BATCH):
            q = (
                select(t.messages.c.message_id, d.verdict, d.reasons, d.refer_to)
                .join(t.decisions, d.message_id == t.messages.c.message_id, isouter=True)
                .where(t.messages.c.message_id.in_(ids[i : i + _BATCH]))
            )
            found.update({r["message_id"]: receipt(r) for r in await self._all(q)})
        # Refused before it was recorded (a signature, key or contract problem): the quarantine says why.
        missing = [m for m in ids if m not in found]
        for i in range(0, len(missing), _BATCH):
            q = (
                select(t.quarantine.c.message_id, t.quarantine.c.reason_code)
                .where(t.quarantine.c.message_id.in_(missing[i : i + _BATCH]))
                .order_by(t.quarantine.c.item_id)
            )
            for r in await self._all(q):
                found.setdefault(
                    r["message_id"],
                    Receipt(message_id=r["message_id"], verdict="rejected", reasons=(r["reason_code"],), refer_to=None),
                )
        return found

    async def sender_status(self, sender_org: str | None = None) -> list[SenderStatusLine]:
        """Each message a sender sent: the gate's verdict and, per recipient, delivered and read times."""
        m, d, v = t.messages.c, t.deliveries.c, t.decisions.c
        q = (
            select(
                m.message_id,
                m.sender_org,
                m.sender_local_id,
                m.received_at,
                v.verdict,
                v.reasons,
                d.recipient,
                d.notify_by,
                d.delivered_at,
                d.read_at,
                d.read_by,
            )
            .join(t.decisions, v.message_id == m.message_id, isouter=True)
            .join(t.deliveries, d.message_id == m.message_id, isouter=True)
            .order_by(m.received_at, m.message_id)
        )
        if sender_org:
            q = q.where(m.sender_org == sender_org)
        return [sender_status_line(r) for r in await self._all(q)]

    async def queue(self, queue: str | None = None, *, open_only: bool = True) -> list[QueueItem]:
        """Items waiting for a person: of one queue or all, open ones only unless asked."""
        q = select(t.queue_items).order_by(t.queue_items.c.item_id)
        if queue:
            q = q.where(t.queue_items.c.queue == queue)
        if open_only:
            q = q.where(t.queue_items.c.resolved_at.is_(None))
        return [queue_item(r) for r in await self._all(q)]

    async def quarantined(self) -> list[QuarantinedItem]:
        return [quarantined_item(r) for r in await self._all(select(t.quarantine).order_by(t.quarantine.c.item_id))]

    async def count(self, table: str) -> int:
        """How many rows a ledger table holds (for figures and tests)."""
        q = select(func.count()).select_from(t.metadata.tables[table])
        async with self.engine.connect() as conn:
            return int((await conn.execute(q)).scalar_one())


class DeliveryReads(Reads):
    async def deliveries_of(self, message_id: str) -> list[DeliveryRecord]:
        """A message's deliveries, by recipient."""
        q = select(t.deliveries).where(t.deliveries.c.message_id == message_id).order_by(t.deliveries.c.recipient)
        return [delivery_record(r) for r in await self._all(q)]

    async def deliveries_for(self, recipient: str) -> list[DeliveryRecord]:
        """A recipient's deliveries, newest first."""
        q = (
            select(t.deliveries)
            .where(t.deliveries.c.recipient == recipient)
            .order_by(t.deliveries.c.created_at.desc(), t.deliveries.c.delivery_id)
        )
        return [delivery_record(r) for r in await self._all(q)]

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        row = await self._first(select(t.deliveries).where(t.deliveries.c.delivery_id == delivery_id))
        return delivery_record(row) if row is not None else None

    async def delivered_count(self) -> int:
        """How many deliveries a recipient system has acknowledged (its system receipt is recorded)."""
        q = select(func.count()).select_from(t.deliveries).where(t.deliveries.c.delivered_at.is_not(None))
        async with self.engine.connect() as conn:
            return int((await conn.execute(q)).scalar_one())

    async def all_deliveries(self) -> list[DeliveryRecord]:
        """Every delivery, oldest first."""
        return [delivery_record(r) for r in await self._all(select(t.deliveries).order_by(t.deliveries.c.created_at))]
