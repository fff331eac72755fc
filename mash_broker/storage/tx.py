"""A ledger transaction: domain-named writes (messages, decisions, deliveries, queues, the audited log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mash_broker.contracts import PolicyError
from mash_broker.core.audit.entries import as_stored, canonical_detail, iso_utc, joined_entry
from mash_broker.core.audit.merkle import leaf_hash
from mash_broker.storage import schema as t
from mash_broker.storage.alerts import AlertWrites
from mash_broker.storage.audit import AuditWrites
from mash_broker.storage.clocks import ClockWrites
from mash_broker.storage.consents import ConsentWrites
from mash_broker.storage.corrections import CorrectionWrites
from mash_broker.storage.directory import DirectoryWrites
from mash_broker.storage.health import HealthWrites
from mash_broker.storage.outbox import OutboxWrites
from mash_broker.storage.projections import ProjectionWrites
from mash_broker.storage.republish import RepublishWrites
from mash_broker.storage.web import WebWrites

EVENT_LOG_LOCK = 0x6D6173685F6C6F67  # "mash_log": the PostgreSQL advisory lock that orders event appends


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
        self.conn = conn
        self._log_locked = False
        self.appended = False  # an event was appended: the ledger pokes its projectors after commit

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
        last = (await self.conn.execute(select(func.max(t.events.c.seq)))).scalar_one()
        await self.conn.execute(
            t.events.insert().values(
                seq=(last or 0) + 1,
                at=at,
                event_type=event_type,
                message_id=mid,
                detail=type_coerce(stored, t.JsonText()),
                leaf_hash=leaf_hash(joined_entry(iso_utc(at), event_type, mid, stored)).hex(),
            )
        )
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
