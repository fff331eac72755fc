"""Corrections and withdrawals: a notification's versions, the copies withdrawn, and the answers a sender
compares a resend with (``core.corrections``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import RowMapping, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mash_broker.core.corrections import CORRECTED, REUSED, WITHDRAWN, quarantine_id
from mash_broker.core.records import DeliveryRecord, NotificationHead, Receipt, VersionRecord, WithdrawnCopy
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.rows import delivery_record

_BATCH = 500
_SHOWN = {CORRECTED: "corrected", WITHDRAWN: "withdrawn"}


class CorrectionWrites(Writes):
    async def version_of(self, message_id: uuid.UUID) -> VersionRecord | None:
        m, v = t.messages.c, t.notification_versions.c
        found = (await self._rows(select(m.kind, m.sender_org).where(m.message_id == str(message_id)))) or None
        if found is None:
            return None
        own = await self._rows(select(v.notification_id, v.version).where(v.message_id == str(message_id)))
        after = await self._rows(select(v.message_id).where(v.supersedes == str(message_id)))
        return VersionRecord(
            message_id=str(message_id),
            kind=found[0]["kind"],
            sender_org=found[0]["sender_org"],
            notification_id=own[0]["notification_id"] if own else str(message_id),
            version=own[0]["version"] if own else 1,
            replaced_by=after[0]["message_id"] if after else None,
        )

    async def record_version(
        self,
        *,
        message_id: uuid.UUID,
        supersedes: uuid.UUID,
        notification_id: str,
        version: int,
        change: str,
        at: datetime,
    ) -> None:
        await self.conn.execute(
            t.notification_versions.insert().values(
                message_id=str(message_id),
                supersedes=str(supersedes),
                notification_id=notification_id,
                version=version,
                change=change,
                recorded_at=at,
            )
        )

    async def live_copies(self, message_id: uuid.UUID) -> list[DeliveryRecord]:
        d = t.deliveries.c
        q = (
            select(t.deliveries)
            .where(d.message_id == str(message_id), d.withdrawn_at.is_(None))
            .order_by(d.recipient, d.delivery_id)
        )
        return [delivery_record(r) for r in await self._rows(q)]

    async def record_withdrawn_copy(
        self,
        *,
        delivery_id: str,
        message_id: str,
        recipient: str,
        withdrawn_by: str,
        by_message_id: uuid.UUID,
        change: str,
        at: datetime,
        notice_id: uuid.UUID | None,
    ) -> None:
        await self.conn.execute(
            t.withdrawn_copies.insert().values(
                delivery_id=delivery_id,
                message_id=message_id,
                recipient=recipient,
                withdrawn_by=withdrawn_by,
                by_message_id=str(by_message_id),
                change=change,
                withdrawn_at=at,
                notice_id=str(notice_id) if notice_id else None,
            )
        )

    async def resolve_queue_items(self, message_id: uuid.UUID, at: datetime) -> int:
        q = t.queue_items.c
        res = await self.conn.execute(
            update(t.queue_items).where(q.message_id == str(message_id), q.resolved_at.is_(None)).values(resolved_at=at)
        )
        return int(res.rowcount)

    async def record_notice_received(self, delivery_id: uuid.UUID, withdrawn_at: datetime, at: datetime) -> bool:
        w, d = t.withdrawn_copies.c, t.deliveries.c
        res = await self.conn.execute(
            update(t.withdrawn_copies)
            .where(w.delivery_id == str(delivery_id), w.notice_received_at.is_(None))
            .values(notice_received_at=at)
        )
        await self.conn.execute(  # an inbox on a ledger of its own hides the copy here
            update(t.deliveries)
            .where(d.delivery_id == str(delivery_id), d.withdrawn_at.is_(None))
            .values(withdrawn_at=withdrawn_at)
        )
        return bool(res.rowcount)


class CorrectionReads(Reads):
    async def notification_heads(self, notification_ids: Iterable[str]) -> dict[str, NotificationHead]:
        ids = list(dict.fromkeys(notification_ids))
        found: dict[str, NotificationHead] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(ids), _BATCH):
                found.update(await _heads(conn, ids[i : i + _BATCH]))
        return found

    async def incident_notifications(
        self, sender_local_id: str, sender_org: str | None = None
    ) -> list[NotificationHead]:
        m, v = t.messages.c, t.notification_versions.c
        q = select(m.message_id).where(
            m.sender_local_id == sender_local_id,
            m.kind == "notification.encompass",
            m.message_id.not_in(select(v.message_id)),  # first versions only: each names its notification
        )
        if sender_org is not None:
            q = q.where(m.sender_org == sender_org)
        roots = [r["message_id"] for r in await self._all(q.order_by(m.received_at, m.message_id))]
        heads = await self.notification_heads(roots)
        return [heads[r] for r in roots if r in heads]

    async def receipts_for_content(self, sent: Mapping[str, str]) -> dict[str, Receipt]:
        ids = list(sent)
        found: dict[str, Receipt] = {}
        m, d, v = t.messages.c, t.decisions.c, t.notification_versions.c
        for i in range(0, len(ids), _BATCH):
            batch = ids[i : i + _BATCH]
            q = (
                select(m.message_id, m.content_hash, d.verdict, d.reasons, d.refer_to, v.change)
                .join(t.decisions, d.message_id == m.message_id, isouter=True)
                .join(t.notification_versions, v.message_id == m.message_id, isouter=True)
                .where(m.message_id.in_(batch))
            )
            other: dict[str, str] = {}
            for r in await self._all(q):
                if r["content_hash"] == sent[r["message_id"]]:
                    found[r["message_id"]] = _answer(r)
                else:  # this id holds other content: only the gate's refusal of this content answers it
                    other[str(quarantine_id(r["message_id"], REUSED, sent[r["message_id"]]))] = r["message_id"]
            if other:
                qs = await self._all(select(t.outbox.c.outbox_id).where(t.outbox.c.outbox_id.in_(list(other))))
                for r in qs:
                    mid = other[r["outbox_id"]]
                    found[mid] = Receipt(message_id=mid, verdict="rejected", reasons=(REUSED,), refer_to=None)
            if missing := [x for x in batch if x not in found and x not in other.values()]:
                found.update(await self._refused(missing))
        return found

    async def _refused(self, ids: list[str]) -> dict[str, Receipt]:
        """Refused before it was recorded (a signature, key or contract problem): the quarantine says why."""
        q = t.quarantine.c
        rows = await self._all(select(q.message_id, q.reason_code).where(q.message_id.in_(ids)).order_by(q.item_id))
        found: dict[str, Receipt] = {}
        for r in rows:
            found.setdefault(
                r["message_id"],
                Receipt(message_id=r["message_id"], verdict="rejected", reasons=(r["reason_code"],), refer_to=None),
            )
        return found

    async def withdrawn_copies_for(self, recipient: str) -> dict[str, WithdrawnCopy]:
        """A recipient's withdrawn copies, by delivery id."""
        w = t.withdrawn_copies.c
        rows = await self._all(select(t.withdrawn_copies).where(w.recipient == recipient))
        return {r["delivery_id"]: WithdrawnCopy(**dict(r)) for r in rows}


def _answer(r: RowMapping) -> Receipt:
    verdict = r["verdict"]
    if r["change"] == WITHDRAWN or (r["change"] == CORRECTED and verdict in ("share", "refer")):
        verdict = _SHOWN[r["change"]]
    reasons = tuple(str(x) for x in r["reasons"]) if r["reasons"] is not None else None
    return Receipt(message_id=r["message_id"], verdict=verdict, reasons=reasons, refer_to=r["refer_to"])


async def _heads(conn: AsyncConnection, roots: list[str]) -> dict[str, NotificationHead]:
    m, v = t.messages.c, t.notification_versions.c
    received = {
        r["message_id"]: r
        for r in (await conn.execute(select(m.message_id, m.sender_local_id).where(m.message_id.in_(roots))))
        .mappings()
        .all()
    }
    last: dict[str, RowMapping] = {}
    q = select(t.notification_versions).where(v.notification_id.in_(list(received))).order_by(v.version)
    for r in (await conn.execute(q)).mappings().all():
        last[r["notification_id"]] = r  # ordered by version: the last one seen is the head
    content = {
        root: (last[root]["supersedes"] if last[root]["change"] == WITHDRAWN else last[root]["message_id"])
        if root in last
        else root
        for root in received
    }
    versions: dict[str, list[str]] = {root: [root] for root in received}  # every version with content, in order
    for r in (
        (
            await conn.execute(
                select(t.notification_versions).where(v.notification_id.in_(list(received))).order_by(v.version)
            )
        )
        .mappings()
        .all()
    ):
        if r["change"] != WITHDRAWN:
            versions[r["notification_id"]].append(r["message_id"])
    wanted = {mid for chain in versions.values() for mid in chain} | set(content.values())
    q = select(m.message_id, m.envelope).where(m.message_id.in_(list(wanted)))
    envelopes = {r["message_id"]: r["envelope"] for r in (await conn.execute(q)).mappings().all()}
    return {
        root: NotificationHead(
            notification_id=root,
            message_id=last[root]["message_id"] if root in last else root,
            version=last[root]["version"] if root in last else 1,
            content_message_id=content[root],
            envelope=envelopes[content[root]],
            withdrawn=root in last and last[root]["change"] == WITHDRAWN,
            sender_local_id=received[root]["sender_local_id"],
            earlier_envelopes=tuple(
                envelopes[mid] for mid in versions[root] if mid != content[root] and mid in envelopes
            ),
        )
        for root in received
        if content[root] in envelopes
    }
