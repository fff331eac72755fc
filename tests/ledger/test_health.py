"""The health adapter's flows (issue 5 item 3) through the gate and a real ledger, on SQLite and PostgreSQL.

``HealthContract`` runs on both backends (the classes at the end); PostgreSQL is the session's server and
skips with the reason when there is none (fails, under CI=true), as in ``test_postgres``. All data is synthetic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mash_broker import defaults
from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.health import HEALTH_DELIVERIES, HEALTH_INBOUND
from mash_broker.agencies.health import inbox as health_inbox
from mash_broker.agencies.health.deadlines import iha_due
from mash_broker.agencies.health.routing import HealthTeams
from mash_broker.agencies.health.tracking import s47_status
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import parse_policy
from mash_broker.contracts import Delivery, Envelope, PersonRead, Quarantined, ReceiptStatus, SystemReceipt, topics
from mash_broker.core import inbox
from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.declared import load_clocks
from mash_broker.core.clocks.keeper import ClockKeeper
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.storage import Ledger

from .gate_contract import DIRECTORY, NOW, assert_no_personal_values, outbox, police_envelope, wire
from .test_postgres import PostgresBackend
from .test_sqlite import SqliteBackend

ROOT = Path(__file__).resolve().parents[2]
POLICY = parse_policy(defaults.POLICY_FILE.read_text(encoding="utf-8"), source="policy.toml")
CHILD = {
    "given_name": "Zebedee",
    "family_name": "Quillfeather",
    "date_of_birth": "2016-05-12",
    "identifiers": [{"scheme": "nhs_number", "value": "999 000 0001"}],
}  # a synthetic 999 range number
LAC = {"article6": "public_task", "statutory_power": "children_act_1989_s22", "article9": "dpa2018_sch1_para2"}
S47 = {
    "article6": "public_task",
    "statutory_power": "children_act_1989_s47",
    "article9": "dpa2018_sch1_para18",
    "consent_not_used_because": "would_put_child_at_risk",
}
GP = "gp:A12345"
FORM = {"document_id": "la-999/forms/0001", "sha256": "ab" * 32}
DUE = NOW + timedelta(days=3)


def la_message(
    payload: dict[str, Any],
    *,
    recipients: tuple[str, ...] = (GP,),
    sender: str = "la:999",
    basis: dict[str, Any] = LAC,
    purpose: str = "looked_after_health",
) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": payload["kind"],
            "sender_org": sender,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": basis,
            "purpose": purpose,
            "recipients": list(recipients),
            "special_category": True,
            "payload": payload,
        }
    )


def iha_request(**payload: Any) -> Envelope:
    return la_message(
        {
            "kind": "health.assessment_request",
            "looked_after_since": "2026-11-16",
            "requested_by": "Synthetic Social Worker",
            **payload,
        },
        recipients=("health:lac-team",),
    )


def s47_request() -> Envelope:
    return la_message(
        {
            "kind": "s47.info_request",
            "questions": "Is the child known to the practice?",
            "answer_by": DUE.isoformat(),
            "requested_by": "Synthetic Social Worker",
        },
        basis=S47,
        purpose="child_protection_enquiry",
    )


def iha_completed(request_id: uuid.UUID, sender: str = "health:lac-team") -> Envelope:
    return la_message(
        {"kind": "health.assessment_completed", "request_message_id": str(request_id), "completed_on": "2026-12-01"},
        recipients=("la:999",),
        sender=sender,
    )


def gp_report(request_id: uuid.UUID, sender: str = GP) -> Envelope:
    return la_message(
        {
            "kind": "s47.gp_report",
            "request_message_id": str(request_id),
            "known_to_practice": True,
            "report": "Synthetic report: registered, seen twice this year.",
            "author": "Dr Example",
        },
        recipients=("la:999",),
        sender=sender,
        basis=S47,
        purpose="child_protection_enquiry",
    )


async def receipts(ledger: Ledger, topic: str) -> list[SystemReceipt]:
    out = []
    for row in await outbox(ledger, topic):
        payload = Envelope.model_validate_json(row.value).payload
        assert isinstance(payload, SystemReceipt)
        out.append(payload)
    return out


TEAMS = HealthTeams(
    school_nurses={"900001": "school_nurse:sn-north"}, health_visitors={"ZZ99": "health_visitor:hv-north"}
)


class HealthContract:
    """Health recipients through the gate. Subclasses provide ``ledger``."""

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
            policy=POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=self.now,
            directories={"health": TEAMS},
        )

    moment = NOW

    def now(self) -> datetime:
        return self.moment

    async def received_and_read(self, gate: GateContext, recipient: str, topic: str) -> Delivery:
        """The recipient's system receives its delivery and a named person reads it."""
        (row,) = [r for r in await outbox(gate.ledger, topic) if r.key == recipient]
        assert await health_inbox.receive_delivery(gate.ledger, row.value.encode(), self.moment) == "delivered"
        sent = Envelope.model_validate_json(row.value)
        assert isinstance(sent.payload, Delivery)
        await inbox.acknowledge_read(
            gate.ledger, (await gate.ledger.delivery(str(sent.message_id))) or {}, "Pat Reader", self.moment
        )
        return sent.payload

    # -- (a) domestic abuse notifications to health visitors and school nurses ---------------------

    async def test_school_age_notification_reaches_the_school_and_the_school_nurse_team(
        self, gate: GateContext
    ) -> None:
        env = police_envelope()  # born 2016: school age
        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "share"
        (row,) = await outbox(gate.ledger, HEALTH_DELIVERIES)
        sent = Envelope.model_validate_json(row.value)
        assert isinstance(sent.payload, Delivery)
        assert (row.key, sent.payload.recipient) == ("school_nurse:sn-north", "school_nurse:sn-north")
        assert "payload.summary_for_school" not in sent.payload.released
        assert "ZZ99" not in row.value  # routed by the postcode district, never released
        recipients = {d.recipient for d in await gate.ledger.all_deliveries()}
        assert recipients == {"school:900001", "school_nurse:sn-north"}
        assert len(await outbox(gate.ledger, EDUCATION_DELIVERIES)) == 1

    async def test_under_five_notification_reaches_the_health_visitor_team(self, gate: GateContext) -> None:
        env = police_envelope(child_dob="2023-02-01", school_urn="")
        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "share"
        (row,) = await outbox(gate.ledger, HEALTH_DELIVERIES)
        assert row.key == "health_visitor:hv-north"
        (queued,) = await gate.ledger.events("delivery.queued")
        assert queued.detail["agreement"] == "health-visitor-domestic-abuse"
        assert [q.reason_code for q in await gate.ledger.queue()] == ["school_not_given"]

    # -- (b) the GP practice is told when a child becomes, or stops being, looked after -------------

    async def test_gp_is_told_of_a_looked_after_change_and_acknowledges_it(self, gate: GateContext) -> None:
        for change in (
            {"change": "became_looked_after", "legal_status": "s31_care_order"},
            {"change": "ceased_looked_after"},
        ):
            msg = la_message({"kind": "care.looked_after_change", "effective_on": "2026-11-16", **change})
            assert await process_inbound(gate, wire(msg), HEALTH_INBOUND) == "share"
        rows = await outbox(gate.ledger, HEALTH_DELIVERIES)
        changes = [Envelope.model_validate_json(r.value).payload for r in rows]
        assert [c.released["payload.change"] for c in changes if isinstance(c, Delivery)] == [
            "became_looked_after",
            "ceased_looked_after",
        ]
        events = [e.event_type for e in await gate.ledger.events()]
        assert [e for e in events if e.startswith("care.")] == [
            "care.child_looked_after",
            "care.child_ceased_looked_after",
        ]
        msg_row = rows[0]
        assert await health_inbox.receive_delivery(gate.ledger, msg_row.value.encode(), NOW) == "delivered"
        delivered = Envelope.model_validate_json(msg_row.value)
        await health_inbox.record_read(gate.ledger, GP, str(delivered.message_id)[:8], "Pat Reader", NOW)
        acks = [
            Envelope.model_validate_json(r.value).payload for r in await outbox(gate.ledger, "la.acknowledgement.v1")
        ]
        assert [type(a) for a in acks] == [SystemReceipt, PersonRead]

    # -- (c) initial health assessment: consent form attached, or refused with the reason ----------

    async def test_iha_request_with_the_consent_form_is_delivered_and_its_clock_runs(self, gate: GateContext) -> None:
        msg = iha_request(consent_form=FORM)
        assert await process_inbound(gate, wire(msg), HEALTH_INBOUND) == "share"
        due = iha_due(date(2026, 11, 16), ZoneInfo("Europe/London"))
        (delivery,) = await gate.ledger.all_deliveries()
        assert (delivery.recipient, delivery.notify_by) == ("health:lac-team", due)
        (requested,) = await gate.ledger.events("health.iha_requested")
        assert requested.message_id == str(msg.message_id)
        assert requested.detail["due_by"] == due.isoformat()
        (receipt,) = await receipts(gate.ledger, "la.receipt.v1")
        assert receipt.status is ReceiptStatus.ACCEPTED

    async def test_iha_request_without_the_consent_form_is_refused_with_the_reason(self, gate: GateContext) -> None:
        msg = iha_request()
        assert await process_inbound(gate, wire(msg), HEALTH_INBOUND) == "withhold"
        assert await gate.ledger.all_deliveries() == []
        assert await gate.ledger.events("health.iha_requested") == []
        (receipt,) = await receipts(gate.ledger, "la.receipt.v1")
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.QUARANTINED, "consent_form_missing")
        (notice,) = await outbox(gate.ledger, topics.GATE_QUARANTINE)
        assert Quarantined.model_validate_json(notice.value).reason_code == "consent_form_missing"

    # -- (d) s47 request to the GP, the GP's report back, and one answered-on-time status ----------

    async def test_s47_report_answered_on_time_with_receipts_and_reads_both_ways(self, gate: GateContext) -> None:
        request = s47_request()
        assert await process_inbound(gate, wire(request), HEALTH_INBOUND) == "share"
        assert (await s47_status(gate.ledger, str(request.message_id), NOW) or {})["status"] == "awaiting"
        to_gp = await self.received_and_read(gate, GP, HEALTH_DELIVERIES)
        assert to_gp.notify_by == DUE

        self.moment = NOW + timedelta(days=1)
        report = gp_report(request.message_id)
        assert await process_inbound(gate, wire(report), HEALTH_INBOUND) == "share"
        (row,) = [r for r in await outbox(gate.ledger, topics.MASH_DELIVERIES) if r.key == "la:999"]
        assert (
            await inbox.receive_delivery(
                gate.ledger, row.value.encode(), self.moment, recipient_classes=("la",), topic=topics.MASH_DELIVERIES
            )
            == "delivered"
        )
        sent = Envelope.model_validate_json(row.value)
        await inbox.acknowledge_read(
            gate.ledger, (await gate.ledger.delivery(str(sent.message_id))) or {}, "Sam Socialworker", self.moment
        )

        status = await s47_status(gate.ledger, str(request.message_id), NOW + timedelta(days=30))
        assert status == {
            "request_message_id": str(request.message_id),
            "answer_by": DUE,
            "answered_at": self.moment,
            "report_message_id": str(report.message_id),
            "status": "answered_on_time",
        }
        deliveries = {d.recipient: d for d in await gate.ledger.all_deliveries()}
        assert all(d.delivered_at and d.read_at for d in deliveries.values())
        la_acks = await outbox(gate.ledger, "la.acknowledgement.v1")  # the GP's receipt and read of the request
        gp_acks = await outbox(gate.ledger, "gp.acknowledgement.v1")  # the LA's receipt and read of the report
        assert (len(la_acks), len(gp_acks)) == (2, 2)

    async def test_the_declared_clocks_start_and_stop_on_the_health_events(self, gate: GateContext) -> None:
        keeper = ClockKeeper(
            gate.ledger, load_clocks(None).clocks, load_calendar(None), self.now, delivery_topic=REGISTRY.delivery_topic
        )
        iha, request = iha_request(consent_form=FORM), s47_request()
        for msg in (iha, request):
            assert await process_inbound(gate, wire(msg), HEALTH_INBOUND) == "share"
        self.moment = NOW + timedelta(days=1)
        assert await process_inbound(gate, wire(gp_report(request.message_id)), HEALTH_INBOUND) == "share"
        await keeper.catch_up()  # the clocks follow the audited log
        started = {
            (e.detail["clock"], e.message_id)
            for e in await gate.ledger.events("clock.started")
            if not e.detail["clock"].startswith("delivery_ack_")
        }  # each delivery's own clock
        assert started == {
            ("initial_health_assessment", str(iha.message_id)),
            ("s47_gp_report", str(request.message_id)),
        }
        assert await process_inbound(gate, wire(iha_completed(iha.message_id)), HEALTH_INBOUND) == "share"
        await keeper.catch_up()
        stopped = {e.detail["clock"]: e for e in await gate.ledger.events("clock.stopped")}
        assert (stopped["s47_gp_report"].message_id, stopped["s47_gp_report"].detail["on_time"]) == (
            str(request.message_id),
            True,
        )
        assert stopped["s47_gp_report"].detail["due_at"] == DUE.isoformat()  # the request's answer_by
        assert (
            stopped["initial_health_assessment"].message_id,
            stopped["initial_health_assessment"].detail["on_time"],
        ) == (str(iha.message_id), True)

    async def test_a_completed_assessment_from_another_team_is_refused_with_field_and_reason(
        self, gate: GateContext
    ) -> None:
        iha = iha_request(consent_form=FORM)
        assert await process_inbound(gate, wire(iha), HEALTH_INBOUND) == "share"
        other = iha_completed(iha.message_id, sender="health:other-team")
        assert await process_inbound(gate, wire(other), HEALTH_INBOUND) == "rejected"
        (refused,) = await receipts(gate.ledger, "health.receipt.v1")
        assert (refused.reason_code, refused.detail) == (
            "answer_unmatched",
            "payload.request_message_id: no initial health assessment request with this id was sent to this team",
        )
        assert await gate.ledger.events("health.initial_assessment_completed") == []

    async def test_a_late_report_is_answered_late_and_a_second_report_does_not_change_it(
        self, gate: GateContext
    ) -> None:
        request = s47_request()
        assert await process_inbound(gate, wire(request), HEALTH_INBOUND) == "share"
        assert (await s47_status(gate.ledger, str(request.message_id), DUE + timedelta(hours=1)) or {})[
            "status"
        ] == "overdue"
        self.moment = DUE + timedelta(hours=2)
        late = gp_report(request.message_id)
        assert await process_inbound(gate, wire(late), HEALTH_INBOUND) == "share"
        self.moment = DUE + timedelta(hours=3)
        assert await process_inbound(gate, wire(gp_report(request.message_id)), HEALTH_INBOUND) == "share"
        status = await s47_status(gate.ledger, str(request.message_id), self.moment)
        assert status is not None
        assert (status["status"], status["report_message_id"]) == ("answered_late", str(late.message_id))
        assert [e.detail["first_answer"] for e in await gate.ledger.events("s47.gp_report_received")] == [True, False]

    async def test_a_report_that_answers_no_request_to_this_practice_is_refused_with_field_and_reason(
        self, gate: GateContext
    ) -> None:
        request = s47_request()
        assert await process_inbound(gate, wire(request), HEALTH_INBOUND) == "share"
        for report in (gp_report(uuid.uuid4()), gp_report(request.message_id, sender="gp:B99999")):
            assert await process_inbound(gate, wire(report), HEALTH_INBOUND) == "rejected"
        refused = await receipts(gate.ledger, "gp.receipt.v1")
        assert [(r.status, r.reason_code) for r in refused] == [(ReceiptStatus.REJECTED, "answer_unmatched")] * 2
        assert all((r.detail or "").startswith("payload.request_message_id: ") for r in refused)
        assert await gate.ledger.events("s47.gp_report_received") == []

    async def test_a_malformed_health_record_is_answered_to_its_sender_with_field_and_reason(
        self, gate: GateContext
    ) -> None:
        doc = json.loads(wire(s47_request()))
        del doc["payload"]["answer_by"]
        doc["subject"]["date_of_birth"] = "not a date"
        assert await process_inbound(gate, json.dumps(doc).encode(), HEALTH_INBOUND) == "rejected"
        (receipt,) = await receipts(gate.ledger, "la.receipt.v1")
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.REJECTED, "contract_invalid")
        assert "subject.date_of_birth" in (receipt.detail or "")
        assert "payload.s47.info_request.answer_by: Field required" in (receipt.detail or "")
        assert_no_personal_values(receipt.detail or "")


class TestSqliteHealth(SqliteBackend, HealthContract):
    """The health flows over a SQLite ledger."""


@pytest.mark.postgres
class TestPostgresHealth(PostgresBackend, HealthContract):
    """The health flows over a PostgreSQL ledger."""
