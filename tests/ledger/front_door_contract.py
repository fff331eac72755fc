"""The MASH front door through the gate service, over a real ledger: run on every storage backend.

Contacts checked for quality (issue 5 item 1) and outcomes fed back to the referrer (item 2), under
the shipped ``mash_broker/defaults/policy.toml``. ``FrontDoorContract`` is abstract like ``LedgerContract``: a
backend's test class inherits it and provides the ``ledger`` fixture.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import time, timedelta
from typing import Any

import pytest
from consent_builders import CHILD, NOW, POLICY, contact, outcome

from mash_broker.agencies.education import EDUCATION_DELIVERIES, EDUCATION_INBOUND
from mash_broker.agencies.health import HEALTH_DELIVERIES
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import Delivery, Envelope, ReceiptStatus, SystemReceipt, topics
from mash_broker.core.clocks import load_calendar
from mash_broker.core.explain import compare, redecide
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.storage import Ledger

REFERRER = "school:900001"
S47 = {"article6": "public_task", "statutory_power": "children_act_1989_s47"}
IDENTIFIED = dict(CHILD, identifiers=[{"scheme": "nhs_number", "value": "9990000018"}])
PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "9990000018", "Ms Example", "Synthetic")


def referral(*, subject: dict[str, Any] = IDENTIFIED, sender: str = REFERRER, **payload: Any) -> Envelope:
    """A contact to the MASH hub for screening, under s47, complete unless changed."""
    doc = contact(recipients=("mash:hub",), purpose="safeguarding_screening", basis=S47, sender_org=sender).model_dump(
        mode="json"
    )
    doc["subject"] = subject
    doc["payload"].update(payload)
    return Envelope.model_validate(doc)


def decision_on(contact_env: Envelope, *, sender: str = "la:999", recipients: tuple[str, ...] = ()) -> Envelope:
    """The MASH's outcome on ``contact_env``: a strategy discussion under s47."""
    doc = outcome(recipients=recipients).model_dump(mode="json")
    doc["sender_org"] = sender
    doc["payload"]["contact_message_id"] = str(contact_env.message_id)
    return Envelope.model_validate(doc)


async def sent_to(ledger: Ledger, topic: str, recipient: str) -> Delivery:
    (row,) = [r for r in await ledger.pending_outbox() if r.topic == topic and r.key == recipient]
    payload = Envelope.model_validate_json(row.value).payload
    assert isinstance(payload, Delivery)
    return payload


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
        return GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=lambda: NOW,
            consent_settle=timedelta(0),
        )

    # -- contact quality (item 1) ----------------------------------------------------------------

    async def test_a_complete_contact_is_shared_with_the_mash_and_not_flagged(self, gate: GateContext) -> None:
        env = referral()
        assert await process_inbound(gate, wire(env), EDUCATION_INBOUND) == "share"

        (receipt,) = await receipts(gate.ledger, REFERRER)
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.ACCEPTED, "statutory_duty")
        (delivery,) = await gate.ledger.all_deliveries()
        assert delivery.recipient == "mash:hub"
        assert await gate.ledger.events("contact.flagged") == []

    async def test_an_incomplete_contact_is_accepted_and_the_referrer_told_what_is_missing(
        self, gate: GateContext
    ) -> None:
        env = referral(subject=CHILD, worried_about="", consent_given=None)
        assert await process_inbound(gate, wire(env), EDUCATION_INBOUND) == "share"

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
        assert delivery.recipient == "mash:hub"  # still screened
        (flagged,) = await gate.ledger.events("contact.flagged")
        assert flagged.detail["fields"] == ["subject.identifiers", "payload.worried_about", "payload.consent_given"]

    async def test_an_incomplete_contact_sent_twice_is_flagged_once(self, gate: GateContext) -> None:
        env = referral(worried_about="")
        assert await process_inbound(gate, wire(env), EDUCATION_INBOUND) == "share"
        assert await process_inbound(gate, wire(env), EDUCATION_INBOUND) == "duplicate"
        assert len(await receipts(gate.ledger, REFERRER)) == 2
        assert len(await gate.ledger.events("contact.flagged")) == 1

    async def test_a_contact_failing_its_contract_is_answered_with_the_field_and_reason(
        self, gate: GateContext
    ) -> None:
        doc = referral().model_dump(mode="json")
        del doc["payload"]["referrer_role"]
        assert await process_inbound(gate, json.dumps(doc).encode(), EDUCATION_INBOUND) == "rejected"

        (receipt,) = await receipts(gate.ledger, REFERRER)
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.REJECTED, "contract_invalid")
        assert receipt.detail is not None
        assert "payload.contact.referrer_role" in receipt.detail
        assert "Field required" in receipt.detail

    # -- outcomes back to the referrer (item 2) --------------------------------------------------

    async def received(self, gate: GateContext, sender: str) -> Envelope:
        env = referral(sender=sender)
        assert await process_inbound(gate, wire(env), EDUCATION_INBOUND) == "share"
        return env

    async def test_a_school_referrer_gets_the_decision_only(self, gate: GateContext) -> None:
        contact_env = await self.received(gate, REFERRER)
        out = decision_on(contact_env)
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "share"

        sent = await sent_to(gate.ledger, EDUCATION_DELIVERIES, REFERRER)
        assert (sent.purpose, sent.content_level) == ("referrer_feedback", "summary")
        assert sent.released == {
            "payload.contact_message_id": str(contact_env.message_id),
            "payload.decision": "strategy_discussion_s47",
            "payload.decided_at": NOW.isoformat().replace("+00:00", "Z"),
        }
        (receipt,) = await receipts(gate.ledger, "la:999")
        assert (receipt.receipted_message_id, receipt.status) == (out.message_id, ReceiptStatus.ACCEPTED)
        recorded = await gate.ledger.message(str(out.message_id))
        assert recorded is not None
        assert recorded.verdict == "share"
        assert any(REFERRER in line and str(contact_env.message_id) in line for line in recorded.trace)
        deliveries = {d.recipient for d in await gate.ledger.all_deliveries()}
        assert deliveries == {"mash:hub", REFERRER}

    async def test_a_police_referrer_gets_the_rationale_and_a_named_gp_its_own_fields(self, gate: GateContext) -> None:
        police = "police:examplepolice"
        contact_env = await self.received(gate, police)
        out = decision_on(contact_env, recipients=("gp:A12345",))
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "share"

        to_police = await sent_to(gate.ledger, topics.MASH_DELIVERIES, police)
        assert to_police.content_level == "full"
        assert set(to_police.released) == {
            "payload.contact_message_id",
            "payload.decision",
            "payload.decided_at",
            "payload.rationale",
        }
        to_gp = await sent_to(gate.ledger, HEALTH_DELIVERIES, "gp:A12345")
        assert to_gp.purpose == "safeguarding_health"
        assert "subject.given_name" in to_gp.released
        assert "payload.rationale" not in to_gp.released

    async def test_an_outcome_for_an_unknown_contact_is_refused_with_the_reason(self, gate: GateContext) -> None:
        unknown = referral()  # never sent
        out = decision_on(unknown)
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "rejected"
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "duplicate"

        (receipt,) = await receipts(gate.ledger, "la:999")
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.REJECTED, "contact_unknown")
        assert receipt.detail is not None
        assert receipt.detail.startswith("payload.contact_message_id:")
        assert await gate.ledger.message(str(out.message_id)) is None
        assert await gate.ledger.all_deliveries() == []
        (q,) = await gate.ledger.quarantined()
        assert q.reason_code == "contact_unknown"

        # Once the contact has arrived, the same outcome sent again is decided and fed back.
        assert await process_inbound(gate, wire(unknown), EDUCATION_INBOUND) == "share"
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "share"
        await sent_to(gate.ledger, EDUCATION_DELIVERIES, REFERRER)

    async def test_an_outcome_not_from_the_mash_is_refused(self, gate: GateContext) -> None:
        contact_env = await self.received(gate, REFERRER)
        out = decision_on(contact_env, sender="school:900002")
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "rejected"

        (receipt,) = [
            r for r in await receipts(gate.ledger, "school:900002") if r.receipted_message_id == out.message_id
        ]
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.REJECTED, "outcome_not_from_mash")
        assert receipt.detail is not None
        assert receipt.detail.startswith("sender_org:")

    async def test_an_outcome_decided_again_goes_to_the_same_referrer(self, gate: GateContext) -> None:
        """what-if, replay and `mash gate check` re-decide through the same referrer lookup."""
        contact_env = await self.received(gate, REFERRER)
        out = decision_on(contact_env)
        assert await process_inbound(gate, wire(out), EDUCATION_INBOUND) == "share"

        again = await redecide(gate.ledger, out, policy=POLICY, registry=REGISTRY, directories={}, now=NOW)
        assert [r.recipient for r in again.releases] == [REFERRER]
        (row,) = [r for r in await gate.ledger.decided_messages(kind="outcome")]
        assert await compare(gate.ledger, row, again) is None
