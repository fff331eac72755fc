"""The gate and the school inbox take records a batch at a time (issue 13): one ledger transaction per batch.

Within one batch a later record sees what an earlier one wrote (the same message id twice is one message, a
correction finds the version it corrects); a record whose handling fails by its own fault rolls the batch back,
and the batch is handled again record by record, so that record alone is parked on the dead-letter topic and
the others go through. Batches are sent with ``publish_batch``, which hands a batch subscriber every record
in one call, as a consumer's ``getmany`` does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from signing_helpers import Keyring

from flows.conftest import SCHOOL_URN, Flow, make_notification
from mash_broker.agencies.police import POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.contracts import Delivery, Envelope, SystemReceipt
from mash_broker.core import gate_service
from mash_broker.core.intake import DEAD_LETTERS
from mash_broker.core.messages import encode


def wire(env: Envelope) -> bytes:
    return encode(env).encode()


def receipts_for(flow: Flow, env: Envelope) -> list[tuple[str, str | None]]:
    found = []
    for record in flow.seen[POLICE_RECEIPTS]:
        payload = record.envelope().payload
        if isinstance(payload, SystemReceipt) and payload.receipted_message_id == env.message_id:
            found.append((payload.status.value, payload.reason_code))
    return found


async def test_the_same_message_twice_in_one_batch_is_one_message_one_delivery_one_receipt(
    flow: Flow, notification: Callable[..., Envelope]
) -> None:
    message = notification()
    await flow.broker.publish_batch(wire(message), wire(message), topic=POLICE_NOTIFICATIONS)
    await flow.settle()

    assert await flow.ledger.count("messages") == 1
    assert len(await flow.ledger.events("message.received")) == 1
    (delivery,) = await flow.ledger.deliveries_of(str(message.message_id))
    assert delivery.delivered_at is not None, "delivered to the school inbox and its receipt recorded"
    assert receipts_for(flow, message) == [("accepted", "statutory_duty")], "one receipt: the copy is a duplicate"


async def test_a_correction_of_a_message_earlier_in_the_same_batch_replaces_it_before_it_goes_out(
    flow: Flow, keyring: Keyring
) -> None:
    first = keyring.sign(make_notification())
    payload = first.payload.model_copy(update={"supersedes": first.message_id, "summary_for_school": "Corrected."})
    correction = keyring.sign(first.model_copy(update={"message_id": uuid.uuid4(), "payload": payload}))
    assert await gate_service.process_batch(
        flow.services.gate, [(wire(first), POLICE_NOTIFICATIONS), (wire(correction), POLICE_NOTIFICATIONS)]
    ) == ["share", "corrected"]
    await flow.settle()

    (old,) = await flow.ledger.deliveries_of(str(first.message_id))
    assert old.withdrawn_at is not None
    assert old.delivered_at is None, "cancelled before the relay published it"
    (new,) = await flow.ledger.deliveries_of(str(correction.message_id))
    assert new.delivered_at is not None
    school = await flow.ledger.deliveries_for(f"school:{SCHOOL_URN}")
    delivered = [Envelope.model_validate_json(r.envelope).payload for r in school if r.delivered_at is not None]
    assert [p.source_message_id for p in delivered if isinstance(p, Delivery)] == [correction.message_id]
    assert receipts_for(flow, correction)[0] == ("corrected", "statutory_duty")


async def test_a_record_that_fails_its_batch_is_parked_alone_and_the_others_go_through(
    flow: Flow, notification: Callable[..., Envelope], monkeypatch: pytest.MonkeyPatch
) -> None:
    parked: list[tuple[bytes, dict[str, str]]] = []
    publish = flow.broker.publish

    async def publishing(value: Any, topic: str = "", **kw: Any) -> Any:
        if topic == DEAD_LETTERS:  # what the gate's guard parks
            parked.append((value, kw["headers"]))
            return None
        return await publish(value, topic, **kw)

    monkeypatch.setattr(flow.broker, "publish", publishing)

    before, bad, after = notification(), notification(), notification()
    decide = gate_service.decide_message

    def failing(message: Envelope, inputs: Any) -> Any:
        if message.message_id == bad.message_id:
            raise ValueError("a fault of this record's handling")
        return decide(message, inputs)

    monkeypatch.setattr(gate_service, "decide_message", failing)
    await flow.broker.publish_batch(wire(before), wire(bad), wire(after), topic=POLICE_NOTIFICATIONS)
    await flow.settle()

    for ok in (before, after):
        (delivery,) = await flow.ledger.deliveries_of(str(ok.message_id))
        assert delivery.delivered_at is not None
    assert await flow.ledger.message(str(bad.message_id)) is None, "nothing of the failed record is kept"
    ((value, headers),) = parked
    assert value == wire(bad), "parked as it was sent"
    assert (headers["dead-letter-reason"], headers["dead-letter-subscriber"]) == ("handler_error", "gate")
    assert await flow.ledger.count("messages") == 2
