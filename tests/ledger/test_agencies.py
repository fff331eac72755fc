"""Agencies as plug-ins, over a real SQLite ledger (issue 10): the regression tests for bugs 2 and 4 (each
failed before the registry and the one pipeline) and probation, the fourth agency, end to end."""

from __future__ import annotations

import json
import uuid
from datetime import time, timedelta
from pathlib import Path

from mash_broker.agencies.probation import PROBATION_DELIVERIES
from mash_broker.agencies.probation.inbox import receive_delivery as probation_inbox
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import Delivery, Envelope, ReceiptStatus, SystemReceipt, topics
from mash_broker.core.clocks import load_calendar
from mash_broker.core.explain import what_if
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.policy import DEFAULT_POLICY, load_policy
from mash_broker.core.replay import ReplayRequest, plan_replay
from mash_broker.storage import Ledger

from .gate_contract import DIRECTORY, NOW, outbox, police_envelope, wire
from .test_health import TEAMS

SHIPPED = load_policy(DEFAULT_POLICY, REGISTRY.policy_kinds)
PRACTITIONER = "probation:pdu-north"
CHILD = {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"}


async def open_gate(tmp_path: Path) -> GateContext:
    ledger = await Ledger.open(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    async with ledger.transaction() as tx:
        await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
    return GateContext(
        registry=REGISTRY,
        ledger=ledger,
        policy=SHIPPED.policy,
        calendar=load_calendar(None),
        notify_by=time(10, 0),
        school_day_starts=time(8, 30),
        clock=lambda: NOW,
        directories={"health": TEAMS},
    )


async def receipts(ledger: Ledger, topic: str, about: uuid.UUID) -> list[SystemReceipt]:
    found = [Envelope.model_validate_json(r.value).payload for r in await outbox(ledger, topic)]
    return [p for p in found if isinstance(p, SystemReceipt) and p.receipted_message_id == about]


async def test_bug4_a_malformed_record_from_housing_or_probation_gets_a_rejected_receipt(tmp_path: Path) -> None:
    """The README invites housing and probation onto mash.inbound.v1: a record of theirs that fails its
    contract is quarantined and its sender told, on its area's receipts topic."""
    gate = await open_gate(tmp_path)
    try:
        for area in ("housing", "probation"):
            mid = uuid.uuid4()
            raw = json.dumps({"message_id": str(mid), "sender_org": f"{area}:x", "kind": "contact"}).encode()
            assert await process_inbound(gate, raw, topics.MASH_INBOUND) == "rejected"
            (receipt,) = await receipts(gate.ledger, f"{area}.receipt.v1", mid)
            assert receipt.status is ReceiptStatus.REJECTED
            assert f"{area}.receipt.v1" in REGISTRY.all_topics
    finally:
        await gate.ledger.close()


async def test_bug2_what_if_and_replay_decide_with_the_health_teams_the_gate_used(tmp_path: Path) -> None:
    """With health teams set, what-if under the same policy changes nothing and a replay re-sends the
    school nurse's delivery the gate made (both decide through the gate's own pipeline)."""
    gate = await open_gate(tmp_path)
    try:
        assert await process_inbound(gate, wire(police_envelope()), "police.notification.v1") == "share"
        total, changes = await what_if(gate.ledger, SHIPPED.policy, registry=REGISTRY, directories=gate.directories)
        assert (total, changes) == (1, [])
        plan = await plan_replay(
            gate.ledger,
            ReplayRequest(NOW - timedelta(hours=1), NOW + timedelta(hours=1)),
            policy=SHIPPED,
            registry=REGISTRY,
            directories=gate.directories,
            now=NOW + timedelta(hours=2),
            replay_id="r",
        )
        assert sorted(i.recipient for i in plan.sends) == ["school:900001", "school_nurse:sn-north"]
        assert plan.withheld == []
        assert plan.changes == []
    finally:
        await gate.ledger.close()


def probation_contact() -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "contact",
            "sender_org": PRACTITIONER,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": {"article6": "public_task", "statutory_power": "children_act_2004_s11"},
            "recipients": ["mash:hub"],
            "payload": {
                "kind": "contact",
                "referrer_name": "Synthetic Practitioner",
                "referrer_role": "Probation practitioner",
                "what_happened": "A person on licence has moved into the child's household.",
                "worried_about": "Licence conditions restrict contact with children.",
                "consent_sought": False,
            },
        }
    )


def outcome_on(contact: Envelope) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "outcome",
            "sender_org": "la:999",
            "correlation_id": contact.correlation_id,
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": {"article6": "public_task", "statutory_power": "children_act_1989_s17"},
            "payload": {
                "kind": "outcome",
                "contact_message_id": str(contact.message_id),
                "decision": "child_in_need_s17",
                "rationale": "Synthetic rationale.",
                "decided_at": NOW,
            },
        }
    )


async def test_probation_contact_quality_receipt_outcome_delivery_and_inbox_receipt(tmp_path: Path) -> None:
    gate = await open_gate(tmp_path)
    ledger = gate.ledger
    try:
        contact = probation_contact()
        assert await process_inbound(gate, wire(contact), REGISTRY.inbound_topic(PRACTITIONER, "contact")) == "share"
        told = await receipts(ledger, "probation.receipt.v1", contact.message_id)
        assert [(r.status, r.reason_code) for r in told] == [
            (ReceiptStatus.ACCEPTED, "statutory_duty"),
            (ReceiptStatus.ACCEPTED, "contact_incomplete"),
        ]
        assert told[1].detail is not None
        assert "subject.identifiers" in told[1].detail
        assert "payload.consent_sought" in told[1].detail

        outcome = outcome_on(contact)
        assert await process_inbound(gate, wire(outcome), topics.MASH_INBOUND) == "share"
        (row,) = await outbox(ledger, PROBATION_DELIVERIES)
        assert row.key == PRACTITIONER
        sent = Envelope.model_validate_json(row.value)
        assert isinstance(sent.payload, Delivery)
        assert sent.payload.purpose == "referrer_feedback"
        assert sent.payload.released["payload.rationale"] == "Synthetic rationale."
        assert not any(f.startswith("subject.") for f in sent.payload.released)
        (queued,) = [e for e in await ledger.events("delivery.queued") if e.detail["recipient"] == PRACTITIONER]
        assert queued.detail["agreement"] == "referrer-outcome-probation"

        assert await probation_inbox(ledger, row.value.encode(), NOW) == "delivered"
        assert await probation_inbox(ledger, row.value.encode(), NOW) == "duplicate"
        (ack,) = await receipts(ledger, topics.acknowledgements_topic("la:999"), outcome.message_id)
        assert ack.status is ReceiptStatus.DELIVERED
    finally:
        await ledger.close()
