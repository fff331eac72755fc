"""After the embedded broker restarts (memory only), every delivery the ledger has as published but
its recipient never received is published again, whatever its topic, and so is every withdrawal notice
no recipient's inbox has recorded: on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from mash_broker.agencies.health import HEALTH_DELIVERIES
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.runtime import republish_undelivered
from mash_broker.core.messages import outbox_id
from mash_broker.storage import Ledger

from .test_postgres import PostgresBackend
from .test_sqlite import SqliteBackend

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def published_delivery(ledger: Ledger, recipient: str, *, delivered: bool = False) -> uuid.UUID:
    """A delivery the relay published (and, if ``delivered``, its recipient's system received)."""
    delivery_id, topic = uuid.uuid4(), REGISTRY.delivery_topic(recipient)
    async with ledger.transaction() as tx:
        await tx.insert_delivery(
            delivery_id=delivery_id,
            message_id=uuid.uuid4(),
            recipient=recipient,
            purpose="safeguarding",
            notify_by=None,
            created_at=NOW,
            envelope="{}",
        )
        await tx.enqueue(
            outbox_id=outbox_id(delivery_id, topic),
            topic=topic,
            key=recipient,
            value="{}",
            headers={"message-id": str(delivery_id)},
            at=NOW,
        )
        if delivered:
            await tx.mark_delivered(delivery_id, NOW)
    await ledger.mark_published([r.seq for r in await ledger.pending_outbox()], NOW)
    return delivery_id


async def published_notice(ledger: Ledger, recipient: str, *, received: bool = False) -> uuid.UUID:
    """A delivered copy withdrawn afterwards, whose ``delivery.withdrawn`` notice the relay published (and,
    if ``received``, the recipient's inbox recorded)."""
    delivery_id = await published_delivery(ledger, recipient, delivered=True)
    notice_id, topic = uuid.uuid4(), REGISTRY.delivery_topic(recipient)
    async with ledger.transaction() as tx:
        await tx.mark_withdrawn(delivery_id, NOW)
        await tx.enqueue(
            outbox_id=outbox_id(notice_id, topic),
            topic=topic,
            key=recipient,
            value="{}",
            headers={"message-id": str(notice_id)},
            at=NOW,
        )
        await tx.record_withdrawn_copy(
            delivery_id=str(delivery_id),
            message_id=str(uuid.uuid4()),
            recipient=recipient,
            withdrawn_by="police:example",
            by_message_id=uuid.uuid4(),
            change="withdrawn",
            at=NOW,
            notice_id=notice_id,
        )
        if received:
            await tx.record_notice_received(delivery_id, NOW, NOW)
    await ledger.mark_published([r.seq for r in await ledger.pending_outbox()], NOW)
    return notice_id


class RepublishContract:
    """Subclasses provide ``ledger``."""

    async def test_an_undelivered_health_delivery_is_published_again(self, ledger: Ledger) -> None:
        health = await published_delivery(ledger, "health:health-visiting")
        assert await republish_undelivered(ledger) == 1
        [again] = await ledger.pending_outbox()
        assert (again.topic, again.outbox_id) == (HEALTH_DELIVERIES, str(outbox_id(health, HEALTH_DELIVERIES)))

    async def test_every_undelivered_delivery_on_every_topic_and_no_delivered_one(self, ledger: Ledger) -> None:
        recipients = ("school:900001", "health:health-visiting", "police:northumbria", "la:999")
        undelivered = {await published_delivery(ledger, r) for r in recipients}
        await published_delivery(ledger, "school:900002", delivered=True)
        await published_delivery(ledger, "health:gp", delivered=True)
        assert await republish_undelivered(ledger) == len(recipients)
        pending = await ledger.pending_outbox()
        assert {r.headers["message-id"] for r in pending} == {str(d) for d in undelivered}
        assert {r.topic for r in pending} == {REGISTRY.delivery_topic(r) for r in recipients}
        assert await republish_undelivered(ledger) == 0  # not yet published again: nothing to undo

    async def test_a_withdrawal_notice_no_inbox_recorded_is_published_again_and_its_copy_is_not(
        self, ledger: Ledger
    ) -> None:
        lost = await published_notice(ledger, "school_nurse:sn-north")
        await published_notice(ledger, "school:900001", received=True)
        assert await republish_undelivered(ledger) == 1
        [again] = await ledger.pending_outbox()
        assert again.headers["message-id"] == str(lost), "the notice, not the withdrawn copy it hides"
        assert again.topic == REGISTRY.delivery_topic("school_nurse:sn-north")


class TestSqliteRepublish(SqliteBackend, RepublishContract):
    """Republishing after a restart on SQLite."""


@pytest.mark.postgres
class TestPostgresRepublish(PostgresBackend, RepublishContract):
    """Republishing after a restart on PostgreSQL."""
