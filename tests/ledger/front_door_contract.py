"""The MASH front door through the gate service, over a real ledger: run on every storage backend.

Contacts checked for quality (issue 5 item 1) and outcomes fed back to the referrer (item 2), under
the shipped ``deploy/policy.toml``. ``FrontDoorContract`` is abstract like ``LedgerContract``: a
backend's test class inherits it and provides the ``ledger`` fixture.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import time, timedelta
from typing import Any

import pytest
from consent_builders import CHILD, NOW, POLICY, contact

from broker.clocks import load_calendar
from broker.gate_service import GateContext, process_inbound
from broker.ledger import Ledger
from contracts import Envelope, ReceiptStatus, SystemReceipt, topics

REFERRER = "school:900001"
S47 = {"article6": "public_task", "statutory_power": "children_act_1989_s47"}
IDENTIFIED = dict(CHILD, identifiers=[{"scheme": "nhs_number", "value": "9990000018"}])
PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "9990000018", "Ms Example", "Synthetic")


def referral(*, subject: dict[str, Any] = IDENTIFIED, sender: str = REFERRER, **payload: Any) -> Envelope:
    """A contact to the MASH hub for screening, under s47, complete unless changed."""
    doc = contact(recipients=("mash:hub",), purpose="safeguarding_screening", basis=S47,
                  sender_org=sender).model_dump(mode="json")
    doc["subject"] = subject
    doc["payload"].update(payload)
    return Envelope.model_validate(doc)


def wire(env: Envelope) -> bytes:
    return env.model_dump_json().encode()


async def receipts(ledger: Ledger, sender: str) -> list[SystemReceipt]:
    out = []
    for row in await ledger.pending_outbox():
        if row.topic == topics.receipts_topic(sender):
            payload = Envelope.model_validate_json(row.value).payload
            assert isinstance(payload, SystemReceipt)
            out.append(payload)
    return out


class FrontDoorContract:
    """Contacts and outcomes through the gate. Subclasses provide ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    def gate(self, ledger: Ledger) -> GateContext:
        return GateContext(ledger=ledger, policy=POLICY, calendar=load_calendar(None), notify_by=time(10, 0),
                           school_day_starts=time(8, 30), clock=lambda: NOW, consent_settle=timedelta(0))

    # -- contact quality (item 1) ----------------------------------------------------------------

    async def test_a_complete_contact_is_shared_with_the_mash_and_not_flagged(self, gate: GateContext) -> None:
        env = referral()
        assert await process_inbound(gate, wire(env), topics.EDUCATION_INBOUND) == "share"

        (receipt,) = await receipts(gate.ledger, REFERRER)
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.ACCEPTED, "statutory_duty")
        (delivery,) = await gate.ledger.all_deliveries()
        assert delivery["recipient"] == "mash:hub"
        assert await gate.ledger.events("contact.flagged") == []

    async def test_an_incomplete_contact_is_accepted_and_the_referrer_told_what_is_missing(
            self, gate: GateContext) -> None:
        env = referral(subject=CHILD, worried_about="", consent_given=None)
        assert await process_inbound(gate, wire(env), topics.EDUCATION_INBOUND) == "share"

        decision, quality = await receipts(gate.ledger, REFERRER)
        assert (decision.status, decision.reason_code) == (ReceiptStatus.ACCEPTED, "statutory_duty")
        assert (quality.status, quality.reason_code) == (ReceiptStatus.ACCEPTED, "contact_incomplete")
        assert quality.receipted_message_id == env.message_id
        assert quality.detail is not None
        for field in ("subject.identifiers", "payload.worried_about", "payload.consent_given"):
            assert field in quality.detail
        for value in PERSONAL:
            assert value not in quality.detail
        (delivery,) = await gate.ledger.all_deliveries()
        assert delivery["recipient"] == "mash:hub"  # still screened
        (flagged,) = await gate.ledger.events("contact.flagged")
        assert flagged["detail"]["fields"] == ["subject.identifiers", "payload.worried_about",
                                               "payload.consent_given"]

    async def test_an_incomplete_contact_sent_twice_is_flagged_once(self, gate: GateContext) -> None:
        env = referral(worried_about="")
        assert await process_inbound(gate, wire(env), topics.EDUCATION_INBOUND) == "share"
        assert await process_inbound(gate, wire(env), topics.EDUCATION_INBOUND) == "duplicate"
        assert len(await receipts(gate.ledger, REFERRER)) == 2
        assert len(await gate.ledger.events("contact.flagged")) == 1

    async def test_a_contact_failing_its_contract_is_answered_with_the_field_and_reason(
            self, gate: GateContext) -> None:
        doc = referral().model_dump(mode="json")
        del doc["payload"]["referrer_role"]
        assert await process_inbound(gate, json.dumps(doc).encode(), topics.EDUCATION_INBOUND) == "rejected"

        (receipt,) = await receipts(gate.ledger, REFERRER)
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.REJECTED, "contract_invalid")
        assert receipt.detail is not None
        assert "payload.contact.referrer_role" in receipt.detail
        assert "Field required" in receipt.detail
