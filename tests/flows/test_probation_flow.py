"""Probation, the fourth agency, on the real app: a probation practitioner's contact -> the MASH (with its
quality receipt on probation.receipt.v1) -> the outcome -> probation.delivery.v1 -> probation's inbox,
whose system receipt goes back to the MASH. All data synthetic."""

from __future__ import annotations

import uuid

from signing_helpers import Keyring

from flows.conftest import NOW, Flow
from mash_broker.agencies.probation import PROBATION_DELIVERIES
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import Delivery, Envelope, ReceiptStatus, SystemReceipt, topics

PRACTITIONER = "probation:pdu-north"
CHILD = {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"}
S11 = {"article6": "public_task", "statutory_power": "children_act_2004_s11"}
S17 = {"article6": "public_task", "statutory_power": "children_act_1989_s17"}


def probation_contact() -> Envelope:
    """A practitioner's contact about a child in the household of a person on licence (no identifier given)."""
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "contact",
            "sender_org": PRACTITIONER,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": S11,
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


def mash_outcome(contact: Envelope) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "outcome",
            "sender_org": "la:999",
            "correlation_id": contact.correlation_id,
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": S17,
            "payload": {
                "kind": "outcome",
                "contact_message_id": str(contact.message_id),
                "decision": "child_in_need_s17",
                "rationale": "Synthetic rationale.",
                "decided_at": NOW,
            },
        }
    )


def receipts_for(flow: Flow, topic: str, message_id: uuid.UUID) -> list[tuple[ReceiptStatus, str | None]]:
    payloads = [rec.envelope().payload for rec in flow.seen[topic]]
    return [
        (p.status, p.reason_code)
        for p in payloads
        if isinstance(p, SystemReceipt) and p.receipted_message_id == message_id
    ]


async def test_a_probation_contact_is_receipted_screened_and_its_outcome_reaches_probations_inbox(
    flow: Flow, keyring: Keyring
) -> None:
    keyring.key(PRACTITIONER)
    keyring.key("la:999")
    contact = keyring.sign(probation_contact())
    assert REGISTRY.inbound_topic(PRACTITIONER, "contact") == topics.MASH_INBOUND
    await flow.send(contact.model_dump_json().encode(), topics.MASH_INBOUND)
    await flow.settle()

    statuses = receipts_for(flow, "probation.receipt.v1", contact.message_id)
    assert (ReceiptStatus.ACCEPTED, "contact_incomplete") in statuses  # the quality receipt
    assert len(statuses) == 2

    outcome = keyring.sign(mash_outcome(contact))
    await flow.send(outcome.model_dump_json().encode(), topics.MASH_INBOUND)
    await flow.settle()

    [feedback] = await flow.ledger.deliveries_for(PRACTITIONER)
    assert feedback.message_id == str(outcome.message_id)
    assert feedback.delivered_at is not None, "probation's inbox received it from probation.delivery.v1"
    sent = Envelope.model_validate_json(feedback.envelope).payload
    assert isinstance(sent, Delivery)
    assert sent.released == {
        "payload.contact_message_id": str(contact.message_id),
        "payload.decision": "child_in_need_s17",
        "payload.decided_at": NOW.isoformat().replace("+00:00", "Z"),
        "payload.rationale": "Synthetic rationale.",
    }
    assert REGISTRY.delivery_topic(PRACTITIONER) == PROBATION_DELIVERIES
    assert (ReceiptStatus.DELIVERED, None) in receipts_for(flow, "la.acknowledgement.v1", outcome.message_id)
    assert await flow.ledger.pending_outbox() == []
