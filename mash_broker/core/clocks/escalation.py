"""What a clock's warning or breach sends, in the transaction that records it: a ClockAlert to whoever
the declaration escalates to, or (a delivery clock) a non-delivery report to the original sender.

Both are outbox records like the gate's other output, signed as `mash:gate`, with deterministic ids
(the clock and the state), so a flag recorded once is sent once. Ids, names and times only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from mash_broker.contracts import (
    AlertState,
    ClockAlert,
    Envelope,
    ReceiptStatus,
    SystemReceipt,
    deterministic_id,
    topics,
)
from mash_broker.core.clocks.declared import Report
from mash_broker.core.messages import GATE_ORG, encode, headers_for, outbox_id, reply
from mash_broker.core.ports import ClockTransaction
from mash_broker.core.records import ClockRecord

Sign = Callable[[Envelope], Envelope]
NOT_ACKNOWLEDGED = "delivery_not_acknowledged"  # reason code of a non-delivery report


DeliveryTopic = Callable[[str], str]  # the registry's delivery topic for a recipient (``Registry.delivery_topic``)


def alert_topic(escalate_to: str, delivery_topic: DeliveryTopic) -> str:
    """A MASH role's alerts go to the MASH queue; an organisation's to its delivery topic (the registry's;
    the MASH's delivery topic when none is given)."""
    if escalate_to.startswith("mash:"):
        return topics.MASH_QUEUE
    return delivery_topic(escalate_to)


async def escalate(
    tx: ClockTransaction,
    row: ClockRecord,
    state: AlertState,
    report: Report,
    now: datetime,
    sign: Sign | None,
    delivery_topic: DeliveryTopic,
) -> str | None:
    """Queue what this warning or breach sends; returns the topic, or None when it sends nothing
    (a delivery clock's warning, or a delivery the ledger no longer has)."""
    if report is Report.NON_DELIVERY:
        return await _non_delivery(tx, row, now, sign) if state is AlertState.BREACHED else None
    subject = row.subject_id
    correlation = await tx.message_correlation(subject)
    alert = ClockAlert(
        clock=row.name,
        subject_message_id=uuid.UUID(subject),
        state=state,
        started_at=row.started_at,
        due_at=row.due_at,
        escalate_to=row.escalate_to,
    )
    env = Envelope(
        message_id=deterministic_id("clock-alert", row.clock_id, state.value),
        kind=alert.kind,
        sender_org=GATE_ORG,
        correlation_id=uuid.UUID(correlation) if correlation else uuid.UUID(subject),
        causation_id=uuid.UUID(subject),
        produced_at=now,
        payload=alert,
    )
    return await _queue(tx, env, alert_topic(row.escalate_to, delivery_topic), row.escalate_to, now, sign)


async def _non_delivery(tx: ClockTransaction, row: ClockRecord, now: datetime, sign: Sign | None) -> str | None:
    """A delivery its recipient's system has not acknowledged in time: a not_delivered receipt for the
    source message, to its sender's receipts topic (MESH's non-delivery report)."""
    delivery = await tx.delivery_source(row.subject_id)
    if delivery is None:
        return None
    source_id, recipient = delivery
    envelope = await tx.message_envelope(source_id)
    if envelope is None:
        return None
    source = Envelope.model_validate_json(envelope)
    receipt = SystemReceipt(
        receipted_message_id=source.message_id,
        status=ReceiptStatus.NOT_DELIVERED,
        reason_code=NOT_ACKNOWLEDGED,
        received_at=now,
        detail=(
            f"delivery {row.subject_id} to {recipient} not acknowledged by its system by "
            f"{row.due_at.isoformat()}; it stays queued and a late receipt is still recorded"
        ),
    )
    env = reply(source, receipt, sender_org=GATE_ORG, now=now, salt=f"not_delivered:{row.subject_id}")
    return await _queue(tx, env, topics.receipts_topic(source.sender_org), source.sender_org, now, sign)


async def _queue(tx: ClockTransaction, env: Envelope, topic: str, key: str, now: datetime, sign: Sign | None) -> str:
    env = sign(env) if sign else env
    await tx.enqueue(
        outbox_id=outbox_id(env.message_id, topic),
        topic=topic,
        key=key,
        value=encode(env),
        headers=headers_for(env),
        at=now,
    )
    return topic
