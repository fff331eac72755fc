"""Health's queries in the gate's transaction: the request an answer names, and whether it was answered."""

from __future__ import annotations

from sqlalchemy import select

from mash_broker.core.records import RecordedRequest
from mash_broker.storage import schema as t
from mash_broker.storage._base import Writes


class HealthWrites(Writes):
    async def recorded_request(self, message_id: str, kind: str) -> RecordedRequest | None:
        """A received message of this kind with this id (the request a GP report or an assessment answers)."""
        m = t.messages.c
        q = select(m.message_id, m.kind, m.envelope).where(m.message_id == message_id, m.kind == kind)
        rows = await self._rows(q)
        if not rows:
            return None
        row = rows[0]
        return RecordedRequest(message_id=row["message_id"], kind=row["kind"], envelope=row["envelope"])

    async def gp_report_recorded(self, request_id: str) -> bool:
        """Whether a GP report has already been recorded against this s47 request (its first answer stands)."""
        e = t.events.c
        q = select(e.seq).where(e.message_id == request_id, e.event_type == "s47.gp_report_received").limit(1)
        return bool(await self._rows(q))
