"""A contact and its outcome on the real app: police contact -> MASH (with a quality receipt) -> outcome -> police."""

from __future__ import annotations

import uuid

from signing_helpers import Keyring

from flows.conftest import NOW, Flow
from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.police import POLICE_RECEIPTS
from mash_broker.contracts import Delivery, Envelope, ReceiptStatus, SystemReceipt

CHILD = {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"}
S47 = {"article6": "public_task", "statutory_power": "children_act_1989_s47"}


def police_contact() -> Envelope:
    """A police contact to the hub that does not say what the officer is worried about."""
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "contact",
            "sender_org": "police:example",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": S47,
            "recipients": ["mash:hub"],
            "payload": {
                "kind": "contact",
                "referrer_name": "PC Example",
                "referrer_role": "Officer",
                "what_happened": "Synthetic incident.",
                "worried_about": "",
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
            "lawful_basis": S47,
            "payload": {
                "kind": "outcome",
                "contact_message_id": str(contact.message_id),
                "decision": "child_in_need_s17",
                "rationale": "Synthetic rationale.",
                "decided_at": NOW,
            },
        }
    )


async def test_a_contact_is_flagged_screened_and_its_outcome_reaches_the_referrer(flow: Flow, keyring: Keyring) -> None:
    keyring.key("la:999")
    contact = keyring.sign(police_contact())
    await flow.send(contact.model_dump_json().encode())
    await flow.settle()

    statuses = [
        (r.status, r.reason_code)
        for r in (rec.envelope().payload for rec in flow.seen[POLICE_RECEIPTS])
        if isinstance(r, SystemReceipt) and r.receipted_message_id == contact.message_id
    ]
    assert (ReceiptStatus.ACCEPTED, "contact_incomplete") in statuses
    assert len(statuses) == 2
    [screening] = await flow.ledger.deliveries_for("mash:hub")
    assert screening.message_id == str(contact.message_id)

    outcome = keyring.sign(mash_outcome(contact))
    await flow.send(outcome.model_dump_json().encode(), EDUCATION_INBOUND)
    await flow.settle()

    [feedback] = await flow.ledger.deliveries_for("police:example")
    assert feedback.message_id == str(outcome.message_id)
    sent = Envelope.model_validate_json(feedback.envelope).payload
    assert isinstance(sent, Delivery)
    assert sent.released["payload.decision"] == "child_in_need_s17"
    assert await flow.ledger.pending_outbox() == []
