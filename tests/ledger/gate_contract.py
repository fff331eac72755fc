"""The gate service and the education inbox, over a real ledger: run on every storage backend.

``GateServiceContract`` is abstract like ``LedgerContract``: a backend's test class inherits it and
provides the ``ledger`` fixture. Envelopes come from the police export mapping, as in production.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.education.inbox import receive_delivery, record_read
from mash_broker.agencies.police import POLICE_ACKNOWLEDGEMENTS, POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.agencies.police.export import EXPORT_COLUMNS, parse_export
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import BUILTIN_POLICY, ENCOMPASS_AGREEMENT, REASON_TEXT, Reason
from mash_broker.contracts import (
    Delivery,
    Envelope,
    NotFound,
    PersonRead,
    Quarantined,
    ReceiptStatus,
    SystemReceipt,
    topics,
)
from mash_broker.core.clocks import load_calendar
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import GATE_ORG, MAX_MESSAGE_BYTES
from mash_broker.storage import Ledger, OutboxRow

from .contract import table_counts

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 17, 6, 30, tzinfo=UTC)  # a Tuesday, before school
DEADLINE = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)  # 10:00 in London (GMT) that morning
LATER = NOW + timedelta(minutes=20)

ROW = {
    "incident_ref": "TST/2026/0001",
    "occurred_at": "2026-11-16T21:40:00",  # Monday evening, local time
    "reported_at": "2026-11-16T21:55:00",
    "force": "examplepolice",
    "incident_type": "domestic_abuse",
    "child_given_name": "Zebedee",
    "child_family_name": "Quillfeather",
    "child_dob": "2016-05-12",
    "child_present": "yes",
    "school_urn": "900001",
    "home_postcode": "ZZ99 1AA",
    "summary": "Officers attended; the child was upstairs.",
}
# Values from the input that must never appear in an error detail or a notice about it.
PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99 1AA", "upstairs")

DIRECTORY = [
    (
        "900001",
        "Example Primary School",
        "999",
        [("Alex Keyadult", "alex@example.org"), ("Sam Deputy", "sam@example.org")],
    ),
    ("900002", "Sample Academy", "998", [("Jo Testperson", "jo@example.org")]),
]


def police_envelope(**changes: str) -> Envelope:
    """One row of the overnight export, mapped by the police adapter."""
    row = {**ROW, **changes}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([EXPORT_COLUMNS, [row[c] for c in EXPORT_COLUMNS]])
    result = parse_export(buf.getvalue().encode(), source="test.csv", now=NOW, tz=LONDON)
    assert not result.problems, result.problems
    (parsed,) = result.accepted
    return parsed.envelope


def wire(env: Envelope) -> bytes:
    return env.model_dump_json().encode()


def json_doc(env: Envelope, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(wire(env))
    doc["sender_org"] = "police:x"
    change(doc)
    return json.dumps(doc).encode()


async def outbox(ledger: Ledger, topic: str) -> list[OutboxRow]:
    return [r for r in await ledger.pending_outbox() if r.topic == topic]


async def event_types(ledger: Ledger) -> list[str]:
    return [e.event_type for e in await ledger.events()]


def assert_no_personal_values(text: str) -> None:
    for value in PERSONAL:
        assert value not in text


class GateServiceContract:
    """The gate's handler and the school inbox on every backend. Subclasses provide ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    async def gate(self, ledger: Ledger) -> GateContext:
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        return GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=BUILTIN_POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=lambda: NOW,
        )

    async def shared(self, gate: GateContext) -> tuple[Envelope, OutboxRow]:
        env = police_envelope()
        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "share"
        (row,) = await outbox(gate.ledger, EDUCATION_DELIVERIES)
        return env, row

    # -- share -----------------------------------------------------------------------------------

    async def test_a_notification_for_a_known_school_is_shared(self, gate: GateContext) -> None:
        ledger = gate.ledger
        env, row = await self.shared(gate)

        (delivery,) = await ledger.all_deliveries()
        assert (delivery.recipient, delivery.message_id) == ("school:900001", str(env.message_id))
        assert delivery.notify_by == DEADLINE
        assert delivery.delivered_at is None
        assert (row.key, row.value) == ("school:900001", delivery.envelope)
        sent = Envelope.model_validate_json(row.value)
        assert (str(sent.message_id), sent.sender_org) == (delivery.delivery_id, GATE_ORG)
        assert (sent.causation_id, sent.correlation_id) == (env.message_id, env.correlation_id)
        assert isinstance(sent.payload, Delivery)
        assert sent.payload.notify_by == DEADLINE

        (receipt_row,) = await outbox(ledger, POLICE_RECEIPTS)
        assert receipt_row.key == env.sender_org
        receipt = Envelope.model_validate_json(receipt_row.value).payload
        assert isinstance(receipt, SystemReceipt)
        assert (receipt.receipted_message_id, receipt.status) == (env.message_id, ReceiptStatus.ACCEPTED)
        assert sorted(r.topic for r in await ledger.pending_outbox()) == [EDUCATION_DELIVERIES, POLICE_RECEIPTS]

        assert await event_types(ledger) == ["message.received", "decision.recorded", "delivery.queued"]
        message = await ledger.message(str(env.message_id))
        assert message is not None
        assert (message.verdict, message.reasons, message.policy_version) == (
            "share",
            ("statutory_duty", "minimum_fields_released"),
            BUILTIN_POLICY.version,
        )
        assert await ledger.queue() == []
        assert await ledger.quarantined() == []

    async def test_a_delivery_releases_only_the_agreements_fields(self, gate: GateContext) -> None:
        _, row = await self.shared(gate)
        sent = Envelope.model_validate_json(row.value)
        assert isinstance(sent.payload, Delivery)

        assert set(sent.payload.released) == set(ENCOMPASS_AGREEMENT.released_fields)
        assert "payload.home_postcode" not in sent.payload.released
        assert "ZZ99" not in row.value
        assert sent.subject is None  # the child's details travel only as released fields
        assert sent.payload.released["subject.given_name"] == "Zebedee"
        (queued,) = await gate.ledger.events("delivery.queued")
        assert queued.detail["fields"] == sorted(ENCOMPASS_AGREEMENT.released_fields)
        (receipt_row,) = await outbox(gate.ledger, POLICE_RECEIPTS)
        assert_no_personal_values(receipt_row.value)

    # -- idempotence -----------------------------------------------------------------------------

    async def test_the_same_message_twice_is_a_duplicate_and_changes_nothing(self, gate: GateContext) -> None:
        env = police_envelope()
        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "share"
        before = await table_counts(gate.ledger)

        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "duplicate"
        resent = env.model_copy(update={"produced_at": NOW + timedelta(hours=1)})  # a resend, re-stamped
        assert await process_inbound(gate, wire(resent), POLICE_NOTIFICATIONS) == "duplicate"

        assert await table_counts(gate.ledger) == before

    async def test_a_reused_message_id_is_rejected_and_quarantined(self, gate: GateContext) -> None:
        ledger = gate.ledger
        first = police_envelope()
        other = police_envelope(summary="A different account.")
        assert other.message_id == first.message_id
        assert await process_inbound(gate, wire(first), POLICE_NOTIFICATIONS) == "share"
        before = await table_counts(ledger)

        assert await process_inbound(gate, wire(other), POLICE_NOTIFICATIONS) == "rejected"

        (q,) = await ledger.quarantined()
        assert (q.reason_code, q.message_id, q.sender_org) == (
            "message_id_reused",
            str(first.message_id),
            first.sender_org,
        )
        (notice,) = await outbox(ledger, topics.GATE_QUARANTINE)
        assert Quarantined.model_validate_json(notice.value).reason_code == "message_id_reused"
        receipts = [Envelope.model_validate_json(r.value).payload for r in await outbox(ledger, POLICE_RECEIPTS)]
        assert [(r.status, r.reason_code) for r in receipts if isinstance(r, SystemReceipt)] == [
            (ReceiptStatus.ACCEPTED, "statutory_duty"),
            (ReceiptStatus.REJECTED, "message_id_reused"),
        ]
        after = await table_counts(ledger)
        for table in ("messages", "decisions", "deliveries", "queue_items"):
            assert after[table] == before[table]
        kept = await ledger.message(str(first.message_id))
        assert kept is not None
        assert "A different account." not in kept.envelope

    # -- withhold and refer ----------------------------------------------------------------------

    async def test_no_lawful_basis_is_withheld_and_quarantined(self, gate: GateContext) -> None:
        ledger = gate.ledger
        env = Envelope.model_validate({**police_envelope().model_dump(), "lawful_basis": None})

        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "withhold"

        message = await ledger.message(str(env.message_id))
        assert message is not None
        assert (message.verdict, message.reasons) == ("withhold", ("no_lawful_basis",))
        (q,) = await ledger.quarantined()
        assert (q.reason_code, q.detail) == ("no_lawful_basis", REASON_TEXT[Reason.NO_LAWFUL_BASIS])
        (notice,) = await outbox(ledger, topics.GATE_QUARANTINE)
        assert Quarantined.model_validate_json(notice.value).reason_code == "no_lawful_basis"
        assert_no_personal_values(notice.value)
        (receipt_row,) = await outbox(ledger, POLICE_RECEIPTS)
        receipt = Envelope.model_validate_json(receipt_row.value).payload
        assert isinstance(receipt, SystemReceipt)
        assert receipt.status is ReceiptStatus.QUARANTINED
        assert await ledger.all_deliveries() == []
        assert await outbox(ledger, EDUCATION_DELIVERIES) == []
        assert "share.withheld" in await event_types(ledger)

    @pytest.mark.parametrize(("urn", "reason"), [("", "school_not_given"), ("999999", "school_not_in_directory")])
    async def test_no_usable_school_is_referred_to_the_mash_queue(
        self, gate: GateContext, urn: str, reason: str
    ) -> None:
        ledger = gate.ledger
        env = police_envelope(school_urn=urn)

        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "refer"

        (item,) = await ledger.queue("mash")
        assert (item.message_id, item.reason_code) == (str(env.message_id), reason)
        assert item.detail == REASON_TEXT[Reason(reason)]
        (queued,) = await outbox(ledger, topics.MASH_QUEUE)
        assert queued.headers["reason-code"] == reason
        assert Envelope.model_validate_json(queued.value).message_id == env.message_id
        (receipt_row,) = await outbox(ledger, POLICE_RECEIPTS)
        receipt = Envelope.model_validate_json(receipt_row.value).payload
        assert isinstance(receipt, SystemReceipt)
        assert receipt.status is ReceiptStatus.REFERRED
        receipts = await ledger.receipts_for([env.message_id])
        assert (receipts[str(env.message_id)].verdict, receipts[str(env.message_id)].refer_to) == ("refer", "mash")
        assert await ledger.all_deliveries() == []

    # -- rejection -------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("bad", "names", "receipted"),
        [
            pytest.param(
                lambda env: b"Zebedee Quillfeather 2016-05-12 ZZ99 1AA upstairs", "Invalid JSON", False, id="not-json"
            ),
            pytest.param(
                lambda env: json_doc(env, lambda d: d["subject"].pop("date_of_birth")),
                "subject.date_of_birth",
                True,
                id="missing-field",
            ),
            pytest.param(
                lambda env: json_doc(env, lambda d: d["payload"].update(pupil_address="1 Secret St")),
                "pupil_address",
                True,
                id="extra-field",
            ),
            pytest.param(
                lambda env: json_doc(env, lambda d: d["payload"].update(child_present="ZZ99 1AA")),
                "payload.notification.encompass.child_present",
                True,
                id="bad-value",
            ),
        ],
    )
    async def test_a_malformed_message_is_rejected_without_quoting_it(
        self, gate: GateContext, bad: Callable[[Envelope], bytes], names: str, receipted: bool
    ) -> None:
        ledger = gate.ledger
        env = police_envelope()
        raw = bad(env)

        assert await process_inbound(gate, raw, POLICE_NOTIFICATIONS) == "rejected"

        (q,) = await ledger.quarantined()
        assert q.reason_code == "contract_invalid"
        assert names in q.detail
        assert_no_personal_values(q.detail)
        assert "Secret" not in q.detail
        assert q.raw == raw.decode()  # never lost: the raw record is kept for a person to see
        (notice,) = await outbox(ledger, topics.GATE_QUARANTINE)
        assert Quarantined.model_validate_json(notice.value).detail == q.detail
        assert_no_personal_values(notice.value)
        receipts = await outbox(ledger, POLICE_RECEIPTS)
        if receipted:
            (receipt_row,) = receipts
            assert receipt_row.key == "police:x"
            assert_no_personal_values(receipt_row.value)
            receipt = Envelope.model_validate_json(receipt_row.value).payload
            assert isinstance(receipt, SystemReceipt)
            assert (receipt.receipted_message_id, receipt.status, receipt.reason_code) == (
                env.message_id,
                ReceiptStatus.REJECTED,
                "contract_invalid",
            )
        else:
            assert (receipts, q.message_id, q.sender_org) == ([], None, None)
        for table in ("messages", "decisions", "deliveries", "queue_items"):
            assert await ledger.count(table) == 0

    async def test_an_oversize_message_is_rejected_as_too_large(self, gate: GateContext) -> None:
        ledger = gate.ledger
        env = police_envelope()
        raw = wire(env)[:-1] + b" " * MAX_MESSAGE_BYTES + b"}"

        assert await process_inbound(gate, raw, POLICE_NOTIFICATIONS) == "rejected"

        (q,) = await ledger.quarantined()
        assert (q.reason_code, q.detail) == ("message_too_large", f"{len(raw)} bytes")
        assert len(q.raw) <= MAX_MESSAGE_BYTES
        (receipt_row,) = await outbox(ledger, POLICE_RECEIPTS)
        receipt = Envelope.model_validate_json(receipt_row.value).payload
        assert isinstance(receipt, SystemReceipt)
        assert (receipt.receipted_message_id, receipt.reason_code) == (env.message_id, "message_too_large")
        assert await ledger.count("messages") == 0

    # -- the school's inbox ------------------------------------------------------------------------

    async def test_a_delivery_is_received_once(self, gate: GateContext) -> None:
        ledger = gate.ledger
        env, row = await self.shared(gate)

        assert await receive_delivery(ledger, row.value.encode(), LATER) == "delivered"
        assert await receive_delivery(ledger, row.value.encode(), LATER + timedelta(minutes=1)) == "duplicate"

        delivery = await ledger.delivery(str(Envelope.model_validate_json(row.value).message_id))
        assert delivery is not None
        assert delivery.delivered_at == LATER
        (ack_row,) = await outbox(ledger, POLICE_ACKNOWLEDGEMENTS)
        ack = Envelope.model_validate_json(ack_row.value)
        assert (ack.sender_org, ack.correlation_id) == ("school:900001", env.correlation_id)
        assert isinstance(ack.payload, SystemReceipt)
        assert (ack.payload.receipted_message_id, ack.payload.status) == (env.message_id, ReceiptStatus.DELIVERED)
        assert len(await ledger.events("delivery.received")) == 1

    async def test_a_key_adult_reading_is_recorded_once(self, gate: GateContext) -> None:
        ledger = gate.ledger
        env, row = await self.shared(gate)
        delivery_id = str(Envelope.model_validate_json(row.value).message_id)
        await receive_delivery(ledger, row.value.encode(), LATER)

        first = await record_read(ledger, "900001", delivery_id[:8], "  alex KEYADULT ", LATER)
        again = await record_read(ledger, "900001", delivery_id, "Sam Deputy", LATER + timedelta(hours=1))

        assert (first.already_read, first.read_by) == (False, "Alex Keyadult")
        assert again.already_read is True
        delivery = await ledger.delivery(delivery_id)
        assert delivery is not None
        assert (delivery.read_by, delivery.read_at) == ("Alex Keyadult", LATER)
        reads = [Envelope.model_validate_json(r.value).payload for r in await outbox(ledger, POLICE_ACKNOWLEDGEMENTS)]
        (read,) = [p for p in reads if isinstance(p, PersonRead)]
        assert (read.read_message_id, read.reader_name, read.reader_org, read.read_at) == (
            env.message_id,
            "Alex Keyadult",
            "school:900001",
            LATER,
        )
        assert len(await ledger.events("notification.read")) == 1

    @pytest.mark.parametrize(
        ("urn", "reader"), [("900001", "Pat Stranger"), ("900002", "Jo Testperson"), ("900003", "Alex Keyadult")]
    )
    async def test_only_the_schools_key_adults_can_read_its_notifications(
        self, gate: GateContext, urn: str, reader: str
    ) -> None:
        ledger = gate.ledger
        _, row = await self.shared(gate)
        delivery_id = str(Envelope.model_validate_json(row.value).message_id)
        before = await table_counts(ledger)

        with pytest.raises(NotFound):
            await record_read(ledger, urn, delivery_id, reader, LATER)

        assert await table_counts(ledger) == before
        delivery = await ledger.delivery(delivery_id)
        assert delivery is not None
        assert delivery.read_at is None

    async def test_a_malformed_message_redelivered_is_quarantined_once(self, gate: GateContext) -> None:
        raw = json_doc(police_envelope(), lambda d: d["subject"].pop("date_of_birth"))
        assert await process_inbound(gate, raw, POLICE_NOTIFICATIONS) == "rejected"
        assert await process_inbound(gate, b"not json", POLICE_NOTIFICATIONS) == "rejected"
        before = await table_counts(gate.ledger)

        assert await process_inbound(gate, raw, POLICE_NOTIFICATIONS) == "duplicate"
        assert await process_inbound(gate, b"not json", POLICE_NOTIFICATIONS) == "duplicate"

        assert await table_counts(gate.ledger) == before

    async def test_different_unreadable_messages_are_each_quarantined(self, gate: GateContext) -> None:
        """Same error, same (absent) ids, different bytes: two records, two notices, none lost."""
        for raw in (b"garbage one", b"garbage two", b"\x00\xff garbage with a NUL"):
            assert await process_inbound(gate, raw, POLICE_NOTIFICATIONS) == "rejected"

        quarantined = await gate.ledger.quarantined()
        assert [q.raw for q in quarantined] == ["garbage one", "garbage two", "\ufffd\ufffd garbage with a NUL"]
        assert len(await outbox(gate.ledger, topics.GATE_QUARANTINE)) == 3

    async def test_a_reused_message_id_redelivered_is_quarantined_once(self, gate: GateContext) -> None:
        other = police_envelope(summary="A different account.")
        assert await process_inbound(gate, wire(police_envelope()), POLICE_NOTIFICATIONS) == "share"
        assert await process_inbound(gate, wire(other), POLICE_NOTIFICATIONS) == "rejected"
        before = await table_counts(gate.ledger)

        resent = other.model_copy(update={"produced_at": NOW + timedelta(hours=1)})
        for again in (other, resent):
            assert await process_inbound(gate, wire(again), POLICE_NOTIFICATIONS) == "duplicate"

        assert await table_counts(gate.ledger) == before
        third = police_envelope(summary="Yet another account.")
        assert await process_inbound(gate, wire(third), POLICE_NOTIFICATIONS) == "rejected"
        assert len(await gate.ledger.quarantined()) == 2
        assert len(await outbox(gate.ledger, POLICE_RECEIPTS)) == 3  # accepted, rejected twice

    @pytest.mark.parametrize(
        "key", ["bad\u0001key", "Zebedee Quillfeather", "x" * 500], ids=["control-character", "a-name", "over-long"]
    )
    async def test_an_unknown_key_is_named_only_if_it_looks_like_a_field_name(
        self, gate: GateContext, key: str
    ) -> None:
        raw = json_doc(police_envelope(), lambda d: d["payload"].update({key: 1}))

        assert await process_inbound(gate, raw, POLICE_NOTIFICATIONS) == "rejected"

        (q,) = await gate.ledger.quarantined()
        assert q.detail == "payload.notification.encompass.<key>: Extra inputs are not permitted"
