"""Recipients' inboxes, shared by every agency adapter: a gated delivery's system receipt and a named
person's read, each recorded once and acknowledged to the sender of the message delivered.

An inbox is the ``deliveries`` rows for one recipient (``school:<URN>``, ``gp:<ODS>``, ``la:<code>``...)
in the ledger. Acknowledgements go to the original sender's ``<area>.acknowledgement.v1`` (police
to ``police.acknowledgement.v1``); they carry no child data and go to the outbox directly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from mash_broker.contracts import (
    Delivery,
    DeliveryWithdrawn,
    Envelope,
    NotFound,
    PersonRead,
    ReceiptStatus,
    SystemReceipt,
    topics,
)
from mash_broker.core.corrections import receive_withdrawal
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import encode, headers_for, outbox_id, reply
from mash_broker.core.ports import InboxLedger, InboxTransaction, WithdrawalNoticeLedger
from mash_broker.core.records import DeliveryRecord, MessageRecord

log = get_logger("mash.inbox")

# Signs an acknowledgement before it goes out (see broker.signing.Signers); None: unsigned.
Sign = Callable[[Envelope], Envelope]
_WITHDRAWN = "this notification was withdrawn by its sender; there is nothing to read"


async def receive_delivery(
    ledger: WithdrawalNoticeLedger,
    raw: bytes,
    now: datetime,
    *,
    recipient_classes: Collection[str],
    topic: str,
    sign: Sign | None = None,
) -> str:
    """Record a recipient system's receipt for one delivery and acknowledge it, or that a withdrawal notice for
    a copy it holds reached it (``core.corrections.receive_withdrawal``). Redeliveries change nothing."""
    try:
        env = Envelope.model_validate_json(raw)
    except ValidationError:
        log.warning("delivery.unreadable", topic=topic)
        return "unreadable"
    payload = env.payload
    if isinstance(payload, DeliveryWithdrawn) and payload.recipient.split(":", 1)[0] in recipient_classes:
        return await receive_withdrawal(ledger, env, now, topic=topic)  # the copy is hidden from then on
    if not isinstance(payload, Delivery) or payload.recipient.split(":", 1)[0] not in recipient_classes:
        log.warning("delivery.not_for_this_inbox", message_id=str(env.message_id), topic=topic)
        return "ignored"
    source = await ledger.message(str(payload.source_message_id))
    async with ledger.transaction() as tx:
        if not await tx.mark_delivered(env.message_id, now):
            return "duplicate"
        await tx.event(
            "delivery.received",
            payload.source_message_id,
            now,
            delivery_id=str(env.message_id),
            recipient=payload.recipient,
        )
        receipt = SystemReceipt(
            receipted_message_id=payload.source_message_id,
            status=ReceiptStatus.DELIVERED,
            received_at=now,
            detail=f"delivered to {payload.recipient} as {env.message_id}",
        )
        await _acknowledge(tx, reply(env, receipt, sender_org=payload.recipient, now=now), source, now, sign)
    log.info(
        "delivery.received",
        message_id=str(env.message_id),
        agency=payload.recipient,
        correlation_id=str(env.correlation_id),
        topic=topic,
    )
    return "delivered"


@dataclass(frozen=True, slots=True)
class ReadRecorded:
    """A person's read of a delivery: who read it and when (the first read, if one was already recorded)."""

    delivery_id: str
    read_by: str | None
    read_at: datetime | None
    already_read: bool


async def resolve_delivery(ledger: InboxLedger, recipient: str, message_id: str) -> DeliveryRecord:
    """A delivery in this recipient's inbox, by full id or a unique prefix of at least 8 characters."""
    rows = await ledger.deliveries_for(recipient)
    wanted = message_id.strip().lower()
    matches = [r for r in rows if r.delivery_id == wanted or (len(wanted) >= 8 and r.delivery_id.startswith(wanted))]
    if len(matches) != 1:
        # Another recipient's delivery is answered exactly like one that does not exist.
        raise NotFound(f"no notification {message_id} in {recipient}'s inbox", record=recipient)
    return matches[0]


async def acknowledge_read(
    ledger: InboxLedger, row: DeliveryRecord, reader: str, now: datetime, *, sign: Sign | None = None
) -> ReadRecorded:
    """A named person read the delivery ``row``: recorded once, and a person-read acknowledgement sent. A copy
    withdrawn by its sender (a correction or a withdrawal) has nothing left to read: refused, nothing recorded."""
    if row.withdrawn_at is not None:
        raise NotFound(_WITHDRAWN, record=f"delivery {row.delivery_id}", field="message_id")
    env = Envelope.model_validate_json(row.envelope)
    assert isinstance(env.payload, Delivery)
    source = await ledger.message(str(env.payload.source_message_id))
    async with ledger.transaction() as tx:
        if not await tx.mark_read(env.message_id, reader, now):
            if row.read_at is None:  # withdrawn since it was looked up
                raise NotFound(_WITHDRAWN, record=f"delivery {row.delivery_id}", field="message_id")
            return ReadRecorded(row.delivery_id, row.read_by, row.read_at, already_read=True)
        await tx.event(
            "notification.read",
            env.payload.source_message_id,
            now,
            delivery_id=str(env.message_id),
            recipient=env.payload.recipient,
        )
        ack = PersonRead(
            read_message_id=env.payload.source_message_id,
            reader_name=reader,
            reader_org=env.payload.recipient,
            read_at=now,
        )
        await _acknowledge(tx, reply(env, ack, sender_org=env.payload.recipient, now=now), source, now, sign)
    log.info("notification.read", message_id=str(env.message_id), agency=env.payload.recipient)
    return ReadRecorded(row.delivery_id, reader, now, already_read=False)


async def _acknowledge(
    tx: InboxTransaction, ack: Envelope, source: MessageRecord | None, now: datetime, sign: Sign | None
) -> None:
    ack = sign(ack) if sign else ack
    # The gate recorded the source message before it queued the delivery; police if it cannot be found.
    topic = topics.acknowledgements_topic(source.sender_org if source else "police:unknown")
    await tx.enqueue(
        outbox_id=outbox_id(ack.message_id, topic),
        topic=topic,
        key=str(ack.correlation_id),
        value=encode(ack),
        headers=headers_for(ack),
        at=now,
    )
