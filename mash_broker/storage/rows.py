"""From table rows to the frozen records of ``mash_broker.core.records``: one function per record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping

from mash_broker.core.records import (
    ClockRecord,
    DecidedMessage,
    DeliveryRecord,
    EventRecord,
    KeyAdult,
    MessageRecord,
    OutboxRow,
    QuarantinedItem,
    QueueItem,
    Receipt,
    School,
    SenderStatusLine,
    WebAccountRecord,
)

Row = RowMapping


def _strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def message_record(r: Row) -> MessageRecord:
    return MessageRecord(
        message_id=r["message_id"],
        kind=r["kind"],
        sender_org=r["sender_org"],
        sender_local_id=r["sender_local_id"],
        correlation_id=r["correlation_id"],
        topic=r["topic"],
        content_hash=r["content_hash"],
        received_at=r["received_at"],
        envelope=r["envelope"],
        verdict=r["verdict"],
        reasons=_strings(r["reasons"]),
        trace=_strings(r["trace"]),
        policy_version=r["policy_version"],
        decided_at=r["decided_at"],
    )


def decided_message(r: Row) -> DecidedMessage:
    return DecidedMessage(
        message_id=r["message_id"],
        kind=r["kind"],
        envelope=r["envelope"],
        received_at=r["received_at"],
        verdict=r["verdict"],
        reasons=_strings(r["reasons"]) or (),
        decided_at=r["decided_at"],
        policy_version=r["policy_version"],
    )


def delivery_record(r: Row) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=r["delivery_id"],
        message_id=r["message_id"],
        recipient=r["recipient"],
        purpose=r["purpose"],
        notify_by=r["notify_by"],
        created_at=r["created_at"],
        delivered_at=r["delivered_at"],
        read_at=r["read_at"],
        read_by=r["read_by"],
        consent_id=r["consent_id"],
        withdrawn_at=r["withdrawn_at"],
        envelope=r["envelope"],
    )


def event_record(r: Row) -> EventRecord:
    return EventRecord(
        seq=int(r["seq"]),
        at=r["at"],
        event_type=r["event_type"],
        message_id=r["message_id"],
        detail=dict(r["detail"]),
        leaf_hash=r["leaf_hash"],
    )


def school(r: Row) -> School:
    return School(urn=r["urn"], name=r["name"], la_code=r["la_code"], loaded_at=r["loaded_at"])


def key_adult(r: Row) -> KeyAdult:
    return KeyAdult(urn=r["urn"], email=r["email"], name=r["name"])


def receipt(r: Row) -> Receipt:
    return Receipt(
        message_id=r["message_id"], verdict=r["verdict"], reasons=_strings(r["reasons"]), refer_to=r["refer_to"]
    )


def sender_status_line(r: Row) -> SenderStatusLine:
    return SenderStatusLine(
        message_id=r["message_id"],
        sender_org=r["sender_org"],
        sender_local_id=r["sender_local_id"],
        received_at=r["received_at"],
        verdict=r["verdict"],
        reasons=_strings(r["reasons"]),
        recipient=r["recipient"],
        notify_by=r["notify_by"],
        delivered_at=r["delivered_at"],
        read_at=r["read_at"],
        read_by=r["read_by"],
    )


def queue_item(r: Row) -> QueueItem:
    return QueueItem(
        item_id=int(r["item_id"]),
        queue=r["queue"],
        message_id=r["message_id"],
        reason_code=r["reason_code"],
        detail=r["detail"],
        created_at=r["created_at"],
        resolved_at=r["resolved_at"],
    )


def quarantined_item(r: Row) -> QuarantinedItem:
    return QuarantinedItem(
        item_id=int(r["item_id"]),
        message_id=r["message_id"],
        sender_org=r["sender_org"],
        topic=r["topic"],
        reason_code=r["reason_code"],
        detail=r["detail"],
        raw=r["raw"],
        created_at=r["created_at"],
    )


def clock_record(r: Row) -> ClockRecord:
    return ClockRecord(
        clock_id=r["clock_id"],
        name=r["name"],
        subject_id=r["subject_id"],
        started_at=r["started_at"],
        due_at=r["due_at"],
        warn_at=r["warn_at"],
        escalate_to=r["escalate_to"],
        stopped_at=r["stopped_at"],
        warned_at=r["warned_at"],
        breached_at=r["breached_at"],
    )


def outbox_row(r: Row) -> OutboxRow:
    return OutboxRow(
        seq=int(r["seq"]),
        outbox_id=r["outbox_id"],
        topic=r["topic"],
        key=r["key"],
        value=r["value"],
        headers=dict(r["headers"]),
    )


def web_account(r: Row) -> WebAccountRecord:
    return WebAccountRecord(
        login=r["login"], role=r["role"], urn=r["urn"], name=r["name"], password_hash=r["password_hash"]
    )
