"""Content-free alerts (email to a Key Adult, a webhook call): queued by the alert projection, sent
and retried by the app's sender. Ids, channels and addresses only; never a notification's content."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy import RowMapping, select, update

from mash_broker.core.records import QueuedAlert
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes


class AlertWrites(Writes):
    async def key_adult_emails(self, urn: str) -> list[str]:
        """The directory's email addresses of a school's Key Adults."""
        q = select(t.key_adults.c.email).where(t.key_adults.c.urn == urn).order_by(t.key_adults.c.email)
        return [str(e) for e in (await self.conn.execute(q)).scalars()]

    async def queue_alert(self, *, alert_id: str, delivery_id: str, channel: str, address: str, at: datetime) -> bool:
        """Queue an alert, due at once; False if it is already queued (its id is deterministic)."""
        q = select(t.alerts.c.alert_id).where(t.alerts.c.alert_id == alert_id)
        if (await self.conn.execute(q)).first() is not None:
            return False
        await self.conn.execute(
            t.alerts.insert().values(
                alert_id=alert_id,
                delivery_id=delivery_id,
                channel=channel,
                address=address,
                created_at=at,
                attempts=0,
                next_attempt_at=at,
            )
        )
        return True


class AlertReads(Reads):
    def _write(self) -> AbstractAsyncContextManager[Writes]:
        """A write transaction (the Ledger's)."""
        raise NotImplementedError

    async def alerts_due(self, now: datetime, limit: int = 100) -> list[QueuedAlert]:
        """Alerts not yet sent whose next attempt is due, oldest first; none for a copy withdrawn since it was
        queued (the notification is hidden from the inbox the alert would send a Key Adult to)."""
        d = t.deliveries.c
        withdrawn = select(d.delivery_id).where(d.delivery_id == t.alerts.c.delivery_id, d.withdrawn_at.is_not(None))
        q = (
            select(t.alerts)
            .where(t.alerts.c.sent_at.is_(None), t.alerts.c.next_attempt_at <= now, ~withdrawn.exists())
            .order_by(t.alerts.c.created_at, t.alerts.c.alert_id)
            .limit(limit)
        )
        return [_queued_alert(r) for r in await self._all(q)]

    async def alert_sent(self, alert_id: str, *, attempts: int, at: datetime) -> None:
        await self._update_alert(alert_id, attempts=attempts, sent_at=at, last_error=None)

    async def alert_failed(self, alert_id: str, *, attempts: int, retry_at: datetime, error: str) -> None:
        """Record a failed attempt (the error's type name, never its text) and when to try again."""
        await self._update_alert(alert_id, attempts=attempts, next_attempt_at=retry_at, last_error=error[:200])

    async def _update_alert(self, alert_id: str, **values: object) -> None:
        async with self._write() as tx:
            await tx.conn.execute(update(t.alerts).where(t.alerts.c.alert_id == alert_id).values(**values))


def _queued_alert(r: RowMapping) -> QueuedAlert:
    return QueuedAlert(
        alert_id=r["alert_id"],
        delivery_id=r["delivery_id"],
        channel=r["channel"],
        address=r["address"],
        created_at=r["created_at"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        sent_at=r["sent_at"],
        last_error=r["last_error"],
    )
