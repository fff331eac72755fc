"""A s47 report request and the GP's report on the real app: LA -> gate -> GP's health inbox (receipt back to
the LA) -> GP report -> gate -> LA, and one answered-on-time status. All synthetic."""

from __future__ import annotations

import uuid
from datetime import timedelta

from signing_helpers import Keyring

from flows.conftest import NOW, Flow
from mash_broker.agencies.health import HEALTH_INBOUND
from mash_broker.agencies.health.tracking import s47_status
from mash_broker.contracts import Envelope

CHILD = {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"}
S47 = {
    "article6": "public_task",
    "statutory_power": "children_act_1989_s47",
    "article9": "dpa2018_sch1_para18",
    "consent_not_used_because": "would_put_child_at_risk",
}


def envelope(sender: str, recipient: str, payload: dict[str, object]) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": payload["kind"],
            "sender_org": sender,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": S47,
            "purpose": "child_protection_enquiry",
            "recipients": [recipient],
            "special_category": True,
            "payload": payload,
        }
    )


async def test_a_s47_request_reaches_the_gp_inbox_and_the_report_comes_back_on_time(
    flow: Flow, keyring: Keyring
) -> None:
    keyring.key("la:999")
    keyring.key("gp:A12345")
    request = keyring.sign(
        envelope(
            "la:999",
            "gp:A12345",
            {
                "kind": "s47.info_request",
                "questions": "Is the child known to the practice?",
                "answer_by": (NOW + timedelta(days=3)).isoformat(),
                "requested_by": "Synthetic Social Worker",
            },
        )
    )
    await flow.send(request.model_dump_json().encode(), HEALTH_INBOUND)
    await flow.settle()

    (to_gp,) = await flow.ledger.deliveries_for("gp:A12345")
    assert to_gp.delivered_at == NOW  # the health inbox subscriber recorded the GP system's receipt
    (received,) = await flow.ledger.events("delivery.received")
    assert received.detail["recipient"] == "gp:A12345"
    assert await flow.ledger.pending_outbox() == []  # the receipt to the LA was published too

    report = keyring.sign(
        envelope(
            "gp:A12345",
            "la:999",
            {
                "kind": "s47.gp_report",
                "request_message_id": str(request.message_id),
                "known_to_practice": True,
                "report": "Synthetic report.",
                "author": "Dr Example",
            },
        )
    )
    await flow.send(report.model_dump_json().encode(), HEALTH_INBOUND)
    await flow.settle()

    (to_la,) = await flow.ledger.deliveries_for("la:999")
    assert to_la.message_id == str(report.message_id)
    status = await s47_status(flow.ledger, str(request.message_id), NOW + timedelta(days=10))
    assert status is not None
    assert status["status"] == "answered_on_time"
