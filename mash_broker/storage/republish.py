"""After the embedded broker restarts (it keeps nothing on disk): the deliveries the ledger has as
published but no recipient system has received, found through the outbox records that carried them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from sqlalchemy import select, update

from mash_broker.storage import schema as t
from mash_broker.storage._base import Writes

_CHUNK = 500


class RepublishWrites(Writes):
    async def republish_undelivered(self, outbox_id: Callable[[uuid.UUID, str], uuid.UUID]) -> dict[str, int]:
        """Publish again every outbox record that carried a delivery not yet received: on whatever topic
        the outbox recorded for it (``outbox_id(delivery_id, topic)`` names the record). Returns how many
        records per topic were put back for the relay; withdrawn deliveries were never published."""
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
        q = select(t.deliveries.c.delivery_id).where(
            t.deliveries.c.delivered_at.is_(None), t.deliveries.c.withdrawn_at.is_(None)
        )
        return [uuid.UUID(d) for d in (await self.conn.execute(q)).scalars()]


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]
