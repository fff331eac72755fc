"""After the embedded broker restarts (it keeps nothing on disk): the deliveries the ledger has as
published but no recipient system has received, and the withdrawal notices no recipient's inbox has
recorded, found through the outbox records that carried them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from sqlalchemy import select, update

from mash_broker.storage import schema as t
from mash_broker.storage._base import Writes

_CHUNK = 500


class RepublishWrites(Writes):
    async def republish_undelivered(self, outbox_id: Callable[[uuid.UUID, str], uuid.UUID]) -> dict[str, int]:
        """Publish again every outbox record that carried a delivery not yet received, or a withdrawal
        notice not yet recorded by its recipient's inbox: on whatever topic the outbox recorded for it
        (``outbox_id(delivery_id or notice_id, topic)`` names the record). Returns how many records per
        topic were put back for the relay. A withdrawn copy is not sent again; its notice is."""
        undelivered = await self._undelivered()
        carried = (await self.conn.execute(select(t.outbox.c.topic).distinct())).scalars().all()
        ids = [str(outbox_id(d, topic)) for d in undelivered for topic in carried]
        again: dict[str, int] = {}
        for chunk in _chunks(ids):
            rows = await self._rows(
                update(t.outbox)
                .where(t.outbox.c.outbox_id.in_(chunk), t.outbox.c.published_at.is_not(None))
                .values(published_at=None)
                .returning(t.outbox.c.topic)
            )
            for r in rows:
                again[r["topic"]] = again.get(r["topic"], 0) + 1
        return again

    async def _undelivered(self) -> list[uuid.UUID]:
        d, w = t.deliveries.c, t.withdrawn_copies.c
        copies = select(d.delivery_id).where(d.delivered_at.is_(None), d.withdrawn_at.is_(None))
        notices = select(w.notice_id).where(w.notice_id.is_not(None), w.notice_received_at.is_(None))
        found = [*(await self.conn.execute(copies)).scalars(), *(await self.conn.execute(notices)).scalars()]
        return [uuid.UUID(i) for i in found]


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]
