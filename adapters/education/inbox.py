"""Education adapter I/O: gated deliveries land in each school's inbox; receipts and reads go to police.

The inbox is the ``deliveries`` row for ``school:<URN>`` in the ledger: the education side records the
system receipt (delivered) and the person-read acknowledgement there, and each goes back to police.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from broker.ledger import Ledger, Tx
from broker.logging import get_logger
from broker.messages import encode, headers_for, outbox_id, reply
from contracts import (
    Delivery,
    Envelope,
    NotFound,
    PersonRead,
    ReceiptStatus,
    SystemReceipt,
    topics,
)

log = get_logger("mash.education")

# Signs an acknowledgement before it goes to police (see broker.signing.Signers); None: unsigned.
Sign = Callable[[Envelope], Envelope]


async def receive_delivery(ledger: Ledger, raw: bytes, now: datetime, *, sign: Sign | None = None) -> str:
    """Record a school's system receipt for one delivery. Redeliveries change nothing."""
    try:
        env = Envelope.model_validate_json(raw)
    except ValidationError:
        log.warning("delivery.unreadable", topic=topics.EDUCATION_DELIVERIES)
        return "unreadable"
    payload = env.payload
    if not isinstance(payload, Delivery) or not payload.recipient.startswith("school:"):
        log.warning("delivery.not_for_a_school", message_id=str(env.message_id))
        return "ignored"
    async with ledger.transaction() as tx:
        if not await tx.mark_delivered(env.message_id, now):
            return "duplicate"
        await tx.event("delivery.received", payload.source_message_id, now,
                       delivery_id=str(env.message_id), recipient=payload.recipient)
        receipt = SystemReceipt(receipted_message_id=payload.source_message_id,
                                status=ReceiptStatus.DELIVERED, received_at=now,
                                detail=f"delivered to {payload.recipient} as {env.message_id}")
        await _to_police(tx, reply(env, receipt, sender_org=payload.recipient, now=now), now, sign)
    log.info("delivery.received", message_id=str(env.message_id), agency=payload.recipient,
             correlation_id=str(env.correlation_id), topic=topics.EDUCATION_DELIVERIES)
    return "delivered"


async def resolve_delivery(ledger: Ledger, urn: str, message_id: str) -> dict[str, Any]:
    """A delivery in this school's inbox, by full id or a unique prefix of at least 8 characters."""
    rows = await ledger.deliveries_for(f"school:{urn}")
    wanted = message_id.strip().lower()
    matches = [r for r in rows if r["delivery_id"] == wanted
               or (len(wanted) >= 8 and r["delivery_id"].startswith(wanted))]
    if len(matches) != 1:
        # Another school's notification is answered exactly like one that does not exist.
        raise NotFound(f"no notification {message_id} in school {urn}'s inbox", record=f"school {urn}")
    return matches[0]


async def record_read(ledger: Ledger, urn: str, message_id: str, by: str, now: datetime, *,
                      sign: Sign | None = None) -> dict[str, Any]:
    """A Key Adult read a notification: recorded once, and a person-read acknowledgement goes to police."""
    adults = await ledger.key_adults(urn)
    names = {a["name"].casefold(): a["name"] for a in adults}
    if by.strip().casefold() not in names:
        raise NotFound(f"{len(adults)} Key Adults are on record for school {urn}; the reader is not one",
                       record=f"school {urn}", field="by")
    row = await resolve_delivery(ledger, urn, message_id)
    reader = names[by.strip().casefold()]
    env = Envelope.model_validate_json(row["envelope"])
    assert isinstance(env.payload, Delivery)
    async with ledger.transaction() as tx:
        if not await tx.mark_read(env.message_id, reader, now):
            return {**row, "already_read": True}
        await tx.event("notification.read", env.payload.source_message_id, now,
                       delivery_id=str(env.message_id), recipient=env.payload.recipient)
        ack = PersonRead(read_message_id=env.payload.source_message_id, reader_name=reader,
                         reader_org=env.payload.recipient, read_at=now)
        await _to_police(tx, reply(env, ack, sender_org=env.payload.recipient, now=now), now, sign)
    log.info("notification.read", message_id=str(env.message_id), agency=env.payload.recipient)
    return {**row, "read_at": now, "read_by": reader, "already_read": False}


async def _to_police(tx: Tx, ack: Envelope, now: datetime, sign: Sign | None) -> None:
    ack = sign(ack) if sign else ack
    await tx.enqueue(outbox_id=outbox_id(ack.message_id, topics.POLICE_ACKNOWLEDGEMENTS),
                     topic=topics.POLICE_ACKNOWLEDGEMENTS, key=str(ack.correlation_id), value=encode(ack),
                     headers=headers_for(ack), at=now)
