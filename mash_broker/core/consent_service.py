"""Recording consent records and dispensations, and stopping shares a withdrawal no longer allows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from mash_broker.consent_gate import ConsentFacts, Reason, child_keys
from mash_broker.contracts import ConsentDispensation, ConsentRecord, ConsentStatus, Envelope
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import outbox_id
from mash_broker.core.ports import ConsentReads, ConsentTransaction

log = get_logger("mash.consent")

STOPPING = frozenset({ConsentStatus.WITHDRAWN, ConsentStatus.REFUSED, ConsentStatus.EXPIRED})


async def facts_for(tx: ConsentReads, message: Envelope, as_of: datetime | None = None) -> ConsentFacts:
    """Everything the ledger holds on this child's consent (as of a moment, for what-if replays)."""
    if message.subject is None:
        return ConsentFacts()
    payloads = await tx.consent_payloads(child_keys(message.subject), as_of)
    records: list[ConsentRecord] = []
    dispensations: list[ConsentDispensation] = []
    for text in payloads:
        if '"consent.dispensation"' in text:
            dispensations.append(ConsentDispensation.model_validate_json(text))
        else:
            records.append(ConsentRecord.model_validate_json(text))
    return ConsentFacts(records=tuple(records), dispensations=tuple(dispensations))


async def record_consent(
    tx: ConsentTransaction, message: Envelope, now: datetime, *, delivery_topic: Callable[[str], str]
) -> str:
    """Store the record against every key the child can be found by; a withdrawal stops queued shares
    (each queued on ``delivery_topic(recipient)``, the registry's)."""
    payload = message.payload
    assert isinstance(payload, ConsentRecord | ConsentDispensation)
    assert message.subject is not None
    if isinstance(payload, ConsentRecord):
        record_id, status = payload.consent_id, payload.status.value
    else:
        record_id, status = payload.dispensation_id, "dispensation"
    await tx.record_consent(
        message_id=message.message_id,
        child_keys=child_keys(message.subject),
        record_kind=payload.kind,
        record_id=record_id,
        status=status,
        received_at=now,
        payload=payload.model_dump_json(),
    )
    await tx.event(
        "consent.recorded",
        message.message_id,
        now,
        record_kind=payload.kind,
        record_id=str(record_id),
        status=status,
        given_by=getattr(payload, "given_by", None),
    )
    if isinstance(payload, ConsentRecord) and payload.status in STOPPING:
        stopped = await _stop_queued_shares(tx, payload, now, delivery_topic)
        log.info("consent.stopped_shares", message_id=str(message.message_id), count=stopped)
    return status


async def _stop_queued_shares(
    tx: ConsentTransaction, record: ConsentRecord, now: datetime, delivery_topic: Callable[[str], str]
) -> int:
    """Deliveries that relied on this consent and are still in the outbox are never published."""
    reason = Reason.CONSENT_WITHDRAWN if record.status is ConsentStatus.WITHDRAWN else Reason.CONSENT_REFUSED
    if record.status is ConsentStatus.EXPIRED:
        reason = Reason.CONSENT_EXPIRED
    stopped = 0
    for row in await tx.consent_deliveries(record.consent_id):
        topic = delivery_topic(row.recipient)
        if not await tx.cancel_unpublished(outbox_id(uuid.UUID(row.delivery_id), topic), now):
            continue  # already published before the withdrawal arrived: it stands, and is on record
        message_id = uuid.UUID(row.message_id)
        await tx.mark_withdrawn(uuid.UUID(row.delivery_id), now)
        if await tx.live_deliveries(message_id):  # shares to others on other consent stand
            await tx.add_decision_reason(message_id, reason.value)
        else:
            await tx.update_decision(message_id, verdict="withhold", reasons=[reason.value])
        await tx.event(
            "share.withdrawn",
            row.message_id,
            now,
            delivery_id=row.delivery_id,
            recipient=row.recipient,
            reason=reason.value,
            consent_id=str(record.consent_id),
        )
        stopped += 1
    return stopped
