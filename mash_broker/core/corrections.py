"""Corrections and withdrawals of a notification: what the gate checks and records, and what an inbox
records when a withdrawal notice reaches it. I/O through the ports only.

A correction is an ``EncompassNotification`` whose ``supersedes`` names the version it replaces; a
withdrawal is a ``NotificationWithdrawn``. Either must come from the notification's sender and replace the
current version (a version is replaced at most once: ``notification_versions.supersedes`` is unique). The
gate then, in the transaction that decides it: records the new version, withdraws every live copy of the
old one (one not yet published is cancelled, as a consent withdrawal does; one already published is sent
a content-free ``delivery.withdrawn`` notice on its recipient's delivery topic), closes the old version's
open queue items, and appends ``share.withdrawn`` per copy (which stops its clocks) and one
``notification.corrected`` or ``notification.withdrawn``. A correction is then decided through the same
pipeline as any notification, so its copies get their own deliveries, deadlines and clocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mash_broker.contracts import (
    DeliveryWithdrawn,
    EncompassNotification,
    Envelope,
    NotificationWithdrawn,
    deterministic_id,
)
from mash_broker.core.audit.copies import stored_sha256
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import GATE_ORG, encode, headers_for, outbox_id
from mash_broker.core.ports import CorrectionTransaction, WithdrawalNoticeLedger
from mash_broker.core.records import DeliveryRecord

log = get_logger("mash.corrections")

CORRECTED, WITHDRAWN = "corrected", "withdrawn"
REASONS = {CORRECTED: "notification_corrected", WITHDRAWN: "notification_withdrawn"}
NOTIFICATION_KINDS = frozenset({"notification.encompass", "notification.encompass.withdrawal"})
REUSED = "message_id_reused"


def quarantine_id(message_id: uuid.UUID | str | None, reason: str, record: str) -> uuid.UUID:
    """The outbox id of the gate's quarantine notice for a record (``record``: its content hash): the same
    record quarantined again for the same reason is recognised, and a sender can ask whether it was."""
    return deterministic_id("quarantine", str(message_id), reason, record)


def replaced(message: Envelope) -> uuid.UUID | None:
    """The version a correction or a withdrawal replaces; None for any other message."""
    payload = message.payload
    if isinstance(payload, NotificationWithdrawn):
        return payload.withdrawn_message_id
    if isinstance(payload, EncompassNotification):
        return payload.supersedes
    return None


def change_of(message: Envelope) -> str:
    return WITHDRAWN if isinstance(message.payload, NotificationWithdrawn) else CORRECTED


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the gate cannot act on a correction or withdrawal: a reason code and the field, in words."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Target:
    """The version being replaced."""

    message_id: uuid.UUID
    notification_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """What became of the replaced version's copies."""

    cancelled: tuple[str, ...]  # recipients whose copy never went
    noticed: tuple[str, ...]  # recipients sent a withdrawal notice

    def detail(self, change: str, old: uuid.UUID) -> str:
        parts = [f"{change} {old}"]
        if self.cancelled:
            parts.append(f"cancelled before it went to {', '.join(self.cancelled)}")
        if self.noticed:
            parts.append(f"withdrawn from {', '.join(self.noticed)} with a notice")
        return "; ".join(parts)


async def target_of(tx: CorrectionTransaction, message: Envelope) -> Target | Refusal:
    """The version ``message`` replaces, if it may: received, a notification, the sender's, current."""
    old = replaced(message)
    assert old is not None  # the caller checked
    field = "payload.withdrawn_message_id" if change_of(message) == WITHDRAWN else "payload.supersedes"
    found = await tx.version_of(old)
    if found is None or found.kind not in NOTIFICATION_KINDS:
        return Refusal("version_unknown", f"{field}: no notification with this message id has been received")
    if found.sender_org != message.sender_org:
        return Refusal("not_the_sender", f"{field}: only the sender of a notification may correct or withdraw it")
    if found.kind != "notification.encompass" and change_of(message) == WITHDRAWN:
        return Refusal("already_withdrawn", f"{field}: this notification is already withdrawn")
    if found.replaced_by is not None:
        return Refusal(
            "version_not_current",
            f"{field}: this version has already been replaced by {found.replaced_by}; replace the current one",
        )
    return Target(old, found.notification_id, found.version)


async def withdraw_copies(
    tx: CorrectionTransaction,
    target: Target,
    by: Envelope,
    now: datetime,
    *,
    delivery_topic: Callable[[str], str],
    sign: Callable[[Envelope], Envelope],
) -> Withdrawal:
    """Record ``by`` as the next version and withdraw every live copy of ``target`` (see the module)."""
    change = change_of(by)
    reason = REASONS[change]
    await tx.record_version(
        message_id=by.message_id,
        supersedes=target.message_id,
        notification_id=target.notification_id,
        version=target.version + 1,
        change=change,
        at=now,
    )
    cancelled: list[str] = []
    noticed: list[str] = []
    for row in await tx.live_copies(target.message_id):
        topic = delivery_topic(row.recipient)
        went = not await tx.cancel_unpublished(outbox_id(uuid.UUID(row.delivery_id), topic), now)
        await tx.mark_withdrawn(uuid.UUID(row.delivery_id), now)
        sent: dict[str, str] = {}
        notice_id = None
        if went:  # published (or being published): its recipient is told to hide it
            notice = sign(notice_envelope(row, by, change, now))
            notice_id, oid = notice.message_id, outbox_id(notice.message_id, topic)
            value = encode(notice)
            await tx.enqueue(
                outbox_id=oid, topic=topic, key=row.recipient, value=value, headers=headers_for(notice), at=now
            )
            sent = {"notice_id": str(notice_id), "outbox_id": str(oid), "outbox_sha256": stored_sha256(value)}
        await tx.record_withdrawn_copy(
            delivery_id=row.delivery_id,
            message_id=row.message_id,
            recipient=row.recipient,
            withdrawn_by=by.sender_org,
            by_message_id=by.message_id,
            change=change,
            at=now,
            notice_id=notice_id,
        )
        await tx.event(
            "share.withdrawn",
            row.message_id,
            now,
            delivery_id=row.delivery_id,
            recipient=row.recipient,
            reason=reason,
            by_message_id=str(by.message_id),
            **sent,
        )
        (noticed if went else cancelled).append(row.recipient)
    await tx.add_decision_reason(target.message_id, reason)
    resolved = await tx.resolve_queue_items(target.message_id, now)
    await tx.event(
        f"notification.{change}",
        target.message_id,
        now,
        by_message_id=str(by.message_id),
        notification_id=target.notification_id,
        version=target.version + 1,
        cancelled=len(cancelled),
        noticed=len(noticed),
        queue_items_closed=resolved,
    )
    return Withdrawal(tuple(cancelled), tuple(noticed))


def notice_envelope(row: DeliveryRecord, by: Envelope, change: str, now: datetime) -> Envelope:
    """The content-free notice that ``row``'s copy is withdrawn (unsigned): ids, a reason and a time."""
    payload = DeliveryWithdrawn(
        withdrawn_delivery_id=uuid.UUID(row.delivery_id),
        source_message_id=uuid.UUID(row.message_id),
        recipient=row.recipient,
        withdrawn_by=by.sender_org,
        reason="corrected" if change == CORRECTED else "withdrawn",
        superseded_by=by.message_id if change == CORRECTED else None,
        withdrawn_at=now,
    )
    return Envelope(
        message_id=deterministic_id("delivery-withdrawn", row.delivery_id),
        kind=payload.kind,
        sender_org=GATE_ORG,
        correlation_id=by.correlation_id,
        causation_id=by.message_id,
        produced_at=now,
        payload=payload,
    )


async def receive_withdrawal(ledger: WithdrawalNoticeLedger, env: Envelope, now: datetime, *, topic: str) -> str:
    """A recipient's inbox records that a withdrawal notice reached it (once); the copy is hidden from then on."""
    payload = env.payload
    assert isinstance(payload, DeliveryWithdrawn)
    async with ledger.transaction() as tx:
        if not await tx.record_notice_received(payload.withdrawn_delivery_id, payload.withdrawn_at, now):
            return "duplicate"
        await tx.event(
            "delivery.withdrawal_received",
            payload.source_message_id,
            now,
            delivery_id=str(payload.withdrawn_delivery_id),
            recipient=payload.recipient,
            notice_id=str(env.message_id),
        )
    log.info("delivery.withdrawal_received", message_id=str(env.message_id), agency=payload.recipient, topic=topic)
    return "withdrawn"
