"""Consent records and what hangs on them: the deliveries a consent allowed, withdrawn before they went."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mash_broker.core.records import DeliveryRecord
from mash_broker.storage import schema as t
from mash_broker.storage._base import Writes
from mash_broker.storage.rows import delivery_record


class ConsentWrites(Writes):
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

    async def consent_deliveries(self, consent_id: uuid.UUID) -> list[DeliveryRecord]:
        """Deliveries that relied on this consent and have not been withdrawn."""
        q = select(t.deliveries).where(
            t.deliveries.c.consent_id == str(consent_id), t.deliveries.c.withdrawn_at.is_(None)
        )
        return [delivery_record(r) for r in await self._rows(q)]

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

    async def live_deliveries(self, message_id: uuid.UUID) -> int:
        """How many of a message's deliveries have not been withdrawn."""
        q = (
            select(func.count())
            .select_from(t.deliveries)
            .where(t.deliveries.c.message_id == str(message_id), t.deliveries.c.withdrawn_at.is_(None))
        )
        return int((await self.conn.execute(q)).scalar_one())


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
