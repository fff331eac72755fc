"""Operation Encompass end to end on the real app: police notification -> gate -> relay -> school inbox -> police."""

from __future__ import annotations

import json
from collections.abc import Callable

from signing_helpers import Keyring

from flows.conftest import KEY_ADULT, NOW, SCHOOL_URN, Flow
from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.education.inbox import record_read
from mash_broker.agencies.police import POLICE_ACKNOWLEDGEMENTS, POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.contracts import (
    Delivery,
    Envelope,
    PersonRead,
    Quarantined,
    ReceiptStatus,
    SystemReceipt,
    topics,
)

Notification = Callable[..., Envelope]
PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99 1AA")


def receipts(flow: Flow, topic: str) -> list[SystemReceipt]:
    out = []
    for record in flow.seen[topic]:
        payload = record.envelope().payload
        assert isinstance(payload, SystemReceipt)
        out.append(payload)
    return out


async def test_notification_reaches_the_school_inbox_and_police_hear_back(
    flow: Flow, notification: Notification
) -> None:
    message = notification()
    await flow.send(message.model_dump_json().encode())

    assert (await flow.ledger.message(str(message.message_id))).verdict == "share"  # type: ignore[union-attr]
    [pending] = await flow.ledger.deliveries_for(f"school:{SCHOOL_URN}")
    assert pending.delivered_at is None  # decided and queued, not yet relayed

    assert await flow.settle() == 3  # the delivery and the gate's receipt, then the school's receipt
    assert await flow.ledger.pending_outbox() == []

    [row] = await flow.ledger.deliveries_for(f"school:{SCHOOL_URN}")
    assert row.delivered_at == NOW
    assert row.message_id == str(message.message_id)
    delivery = Envelope.model_validate_json(row.envelope).payload
    assert isinstance(delivery, Delivery)
    assert "payload.home_postcode" not in delivery.released
    assert "ZZ99 1AA" not in row.envelope
    assert delivery.notify_by is not None
    assert delivery.notify_by > NOW

    [gate_receipt] = receipts(flow, POLICE_RECEIPTS)
    assert gate_receipt.receipted_message_id == message.message_id
    assert gate_receipt.status is ReceiptStatus.ACCEPTED
    assert gate_receipt.reason_code == "statutory_duty"

    [ack] = flow.seen[POLICE_ACKNOWLEDGEMENTS]
    school_receipt = ack.envelope()
    assert school_receipt.sender_org == f"school:{SCHOOL_URN}"
    assert school_receipt.correlation_id == message.correlation_id
    assert isinstance(school_receipt.payload, SystemReceipt)
    assert school_receipt.payload.status is ReceiptStatus.DELIVERED
    assert school_receipt.payload.receipted_message_id == message.message_id

    for record in [*flow.seen[POLICE_RECEIPTS], ack]:
        assert record.headers["message-id"]
        assert record.headers["correlation-id"] == str(message.correlation_id)
        assert not any(p in v for p in PERSONAL for v in record.headers.values())
    assert flow.seen[topics.GATE_QUARANTINE] == []
    assert flow.seen[topics.MASH_QUEUE] == []


async def test_key_adult_read_goes_back_to_police(flow: Flow, notification: Notification) -> None:
    await flow.send(notification().model_dump_json().encode())
    await flow.settle()
    [row] = await flow.ledger.deliveries_for(f"school:{SCHOOL_URN}")
    await record_read(flow.ledger, SCHOOL_URN, row.delivery_id, KEY_ADULT[0], NOW)
    assert await flow.settle() == 1
    read = flow.seen[POLICE_ACKNOWLEDGEMENTS][-1].envelope().payload
    assert isinstance(read, PersonRead)
    assert read.reader_name == KEY_ADULT[0]


async def test_malformed_bytes_are_quarantined_without_raising(flow: Flow) -> None:
    await flow.send(b"\xff\xfe not json at all")  # the handler returning normally is the assertion
    assert await flow.settle() == 1

    [record] = flow.seen[topics.GATE_QUARANTINE]
    notice = Quarantined.model_validate_json(record.value)
    assert notice.reason_code == "contract_invalid"
    assert notice.source_message_id is None
    assert record.headers["reason-code"] == "contract_invalid"
    [item] = await flow.ledger.quarantined()
    assert item.topic == POLICE_NOTIFICATIONS
    assert flow.seen[POLICE_RECEIPTS] == []  # nobody to tell: the sender is unknown
    assert await flow.ledger.count("messages") == 0


async def test_contract_violation_is_quarantined_and_its_sender_told(flow: Flow, notification: Notification) -> None:
    doc = json.loads(notification().model_dump_json())
    doc["payload"]["summary_for_school"] = "x" * 2001
    await flow.send(json.dumps(doc).encode())
    await flow.settle()

    [record] = flow.seen[topics.GATE_QUARANTINE]
    notice = Quarantined.model_validate_json(record.value)
    assert notice.reason_code == "contract_invalid"
    assert "payload.notification.encompass.summary_for_school" in notice.detail
    assert "xxxx" not in notice.detail  # field paths and reasons, never the values
    [rejected] = receipts(flow, POLICE_RECEIPTS)
    assert rejected.status is ReceiptStatus.REJECTED
    assert str(rejected.receipted_message_id) == doc["message_id"]


async def test_notification_without_a_school_goes_to_the_mash_queue(flow: Flow, notification: Notification) -> None:
    message = notification(urn=None)
    await flow.send(message.model_dump_json().encode())
    await flow.settle()

    [record] = flow.seen[topics.MASH_QUEUE]
    assert record.envelope().message_id == message.message_id
    assert record.headers["reason-code"] == "school_not_given"
    [item] = await flow.ledger.queue("mash")
    assert item.reason_code == "school_not_given"
    [receipt] = receipts(flow, POLICE_RECEIPTS)
    assert receipt.status is ReceiptStatus.REFERRED
    assert await flow.ledger.all_deliveries() == []


async def test_unknown_school_goes_to_the_mash_queue(flow: Flow, notification: Notification) -> None:
    await flow.send(notification(urn="123456").model_dump_json().encode())
    await flow.settle()
    [record] = flow.seen[topics.MASH_QUEUE]
    assert record.headers["reason-code"] == "school_not_in_directory"
    assert await flow.ledger.all_deliveries() == []


async def test_no_lawful_basis_is_withheld_and_quarantined(flow: Flow, notification: Notification) -> None:
    message = notification(no_basis=True)
    await flow.send(message.model_dump_json().encode())
    await flow.settle()

    [record] = flow.seen[topics.GATE_QUARANTINE]
    notice = Quarantined.model_validate_json(record.value)
    assert (notice.reason_code, notice.source_message_id) == ("no_lawful_basis", message.message_id)
    assert not any(p.encode() in record.value for p in PERSONAL)
    [receipt] = receipts(flow, POLICE_RECEIPTS)
    assert receipt.status is ReceiptStatus.QUARANTINED
    assert await flow.ledger.all_deliveries() == []
    assert flow.seen[topics.MASH_QUEUE] == []


async def test_resent_notification_is_delivered_once(flow: Flow, notification: Notification) -> None:
    message = notification()
    for _ in range(2):
        await flow.send(message.model_dump_json().encode())
        await flow.settle()
    assert len(await flow.ledger.all_deliveries()) == 1
    assert len(flow.seen[POLICE_RECEIPTS]) == 1
    assert len(flow.seen[POLICE_ACKNOWLEDGEMENTS]) == 1

    # The relay may publish a delivery twice (at least once): the inbox records it once.
    [row] = await flow.ledger.all_deliveries()
    await flow.send(row.envelope.encode(), EDUCATION_DELIVERIES)
    assert await flow.settle() == 0
    assert len(flow.seen[POLICE_ACKNOWLEDGEMENTS]) == 1


async def test_reused_message_id_is_rejected(flow: Flow, notification: Notification, keyring: Keyring) -> None:
    first = notification()
    await flow.send(first.model_dump_json().encode())
    other = keyring.sign(
        notification(reference="EXP/2026/9999").model_copy(
            update={"message_id": first.message_id, "correlation_id": first.correlation_id}
        )
    )
    await flow.send(other.model_dump_json().encode())
    await flow.settle()
    reasons = [Quarantined.model_validate_json(r.value).reason_code for r in flow.seen[topics.GATE_QUARANTINE]]
    assert reasons == ["message_id_reused"]
    statuses = sorted(r.status.value for r in receipts(flow, POLICE_RECEIPTS))
    assert statuses == ["accepted", "rejected"]
    assert len(await flow.ledger.all_deliveries()) == 1
