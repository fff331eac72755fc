"""Queries over what the ledger recorded: messages and decisions, deliveries, events, queues, receipts.

One authority's or one force's part of the audited log (``core.scope``) is selected in SQL
(``area_events``, ``force_events``): a board or report of one authority never reads the others' rows. The
filter is the same rule as ``core.scope`` (tested equal on both backends), expressed over the detail's JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from mash_broker.core.areas import AREA_CODE, AUTHORITY_CLASSES
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
_PER_DELIVERY = ("delivery.queued", "share.not_released", "share.referred")  # as core.scope's


def detail_text(key: str, table: Any = t.events) -> ColumnElement[str]:
    """An event detail's value as text (SQLite ``JSON_EXTRACT``, PostgreSQL ``->>``); NULL when absent."""
    value: ColumnElement[str] = table.c.detail[key].as_string()
    return value


def checked_code(code: str) -> str:
    """An authority's code as the region spells it (three digits), or ValueError: it goes into a pattern."""
    if not AREA_CODE.fullmatch(code):
        raise ValueError(f"not an authority code: {code!r}")
    return code


# The scope's subqueries read the log under their own name, so none is correlated with an outer query on it.
def area_messages(code: str) -> Select[Any]:
    """The messages decided under authority ``code``'s agreements (``decision.recorded`` lists it)."""
    e = t.events.alias("decided")
    # ``areas`` is a JSON list of three-digit codes: its text holds "<code>" with its quotes only if listed.
    return select(e.c.message_id).where(
        e.c.event_type == "decision.recorded", detail_text("areas", e).like(f'%"{checked_code(code)}"%')
    )


def area_deliveries(code: str) -> Select[Any]:
    """The deliveries authority ``code`` released (``delivery.queued`` with its ``area``)."""
    e = t.events.alias("released")
    return select(detail_text("delivery_id", e)).where(
        e.c.event_type == "delivery.queued", detail_text("area", e) == code
    )


def force_messages(force: str) -> Select[Any]:
    """The messages police force ``force`` (``police:<force>`` or the bare name) sent."""
    sender = force if ":" in force else f"police:{force}"
    e = t.events.alias("sent")
    return select(e.c.message_id).where(e.c.event_type == "message.received", detail_text("sender_org", e) == sender)


def force_deliveries(force: str) -> Select[Any]:
    """The deliveries made of the messages police force ``force`` sent."""
    e = t.events.alias("made")
    return select(detail_text("delivery_id", e)).where(
        e.c.event_type == "delivery.queued", e.c.message_id.in_(force_messages(force))
    )


def _kept(deliveries: Select[Any], messages: Select[Any]) -> ColumnElement[bool]:
    """``core.scope.Scope.keeps``: an entry of one of the deliveries, else (not a per-delivery entry) of one
    of the messages."""
    e, delivery = t.events.c, detail_text("delivery_id")
    return or_(
        and_(delivery.is_not(None), delivery.in_(deliveries)),
        and_(delivery.is_(None), e.event_type.not_in(_PER_DELIVERY), e.message_id.in_(messages)),
    )


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

    async def area_events(self, code: str) -> list[EventRecord]:
        """Authority ``code``'s part of the audited log, in order (``core.scope.area_scope(...).select``),
        selected in SQL: its messages' entries, its deliveries' and what followed them, its refusals and its
        queues' referrals."""
        e = t.events.c
        queues = [f"{cls}:{checked_code(code)}" for cls in sorted(AUTHORITY_CLASSES)]
        per_delivery = _kept(area_deliveries(code), area_messages(code))
        q = (
            select(t.events)
            .where(
                or_(
                    and_(e.event_type == "share.not_released", detail_text("area") == code),
                    and_(e.event_type == "share.referred", detail_text("queue").in_(queues)),
                    and_(e.event_type.not_in(("share.not_released", "share.referred")), per_delivery),
                )
            )
            .order_by(e.seq)
        )
        return [event_record(r) for r in await self._all(q)]

    async def force_events(self, force: str) -> list[EventRecord]:
        """Police force ``force``'s part of the audited log, in order (``core.scope.force_scope(...).select``),
        selected in SQL: every entry about a message it sent and about the deliveries made of them."""
        e = t.events.c
        messages, deliveries = force_messages(force), force_deliveries(force)
        q = (
            select(t.events)
            .where(
                or_(
                    and_(e.event_type.in_(("share.not_released", "share.referred")), e.message_id.in_(messages)),
                    and_(e.event_type.not_in(("share.not_released", "share.referred")), _kept(deliveries, messages)),
                )
            )
            .order_by(e.seq)
        )
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

    async def school_deliveries(self, area: str | None = None) -> list[DeliveryRecord]:
        """Deliveries to schools with a deadline, oldest first: all of them, or those authority ``area``
        released (selected in SQL, as ``core.scope``)."""
        d = t.deliveries.c
        q = select(t.deliveries).where(d.recipient.startswith("school:"), d.notify_by.is_not(None))
        if area is not None:
            q = q.where(d.delivery_id.in_(area_deliveries(area)))
        return [delivery_record(r) for r in await self._all(q.order_by(d.created_at, d.delivery_id))]

    async def all_deliveries(self) -> list[DeliveryRecord]:
        """Every delivery, oldest first."""
        return [delivery_record(r) for r in await self._all(select(t.deliveries).order_by(t.deliveries.c.created_at))]
