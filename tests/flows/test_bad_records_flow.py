"""Records the gate must refuse though they parse (issue 11, problem 11), through the real app on the
in-memory broker: a key given twice (the last one used to win) and a sender claiming to be the gate."""

from __future__ import annotations

from collections.abc import Callable

from signing_helpers import Keyring

from flows.conftest import SCHOOL_URN, Flow
from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.police import POLICE_RECEIPTS
from mash_broker.contracts import Envelope, Quarantined, topics
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.signing import sign


async def test_a_key_given_twice_is_refused_naming_it(flow: Flow, notification: Callable[..., Envelope]) -> None:
    env = notification()
    wire = env.model_dump_json()
    twice = wire.replace(f'"school_urn":"{SCHOOL_URN}"', f'"school_urn":"900002","school_urn":"{SCHOOL_URN}"')
    assert twice != wire

    await flow.send(twice.encode())
    await flow.settle()

    [record] = flow.seen[topics.GATE_QUARANTINE]
    notice = Quarantined.model_validate_json(record.value)
    assert (notice.reason_code, notice.detail) == ("duplicate_key", "payload.school_urn: key given more than once")
    [receipt] = [r.envelope().payload for r in flow.seen[POLICE_RECEIPTS]]
    assert (receipt.status.value, receipt.reason_code) == ("rejected", "duplicate_key")  # type: ignore[union-attr]
    assert await flow.ledger.count("messages") == 0
    assert await flow.ledger.count("deliveries") == 0


async def test_only_the_gate_sends_as_the_gate(
    flow: Flow, notification: Callable[..., Envelope], keyring: Keyring
) -> None:
    forged = sign(notification().model_copy(update={"sender_org": GATE_ORG, "signature": None}), keyring.gate())

    await flow.send(forged.model_dump_json().encode())
    await flow.settle()

    [record] = flow.seen[topics.GATE_QUARANTINE]
    notice = Quarantined.model_validate_json(record.value)
    assert (notice.reason_code, notice.sender_org) == ("sender_is_gate", GATE_ORG)
    assert await flow.ledger.count("messages") == 0
    assert await flow.ledger.count("deliveries") == 0
    assert flow.seen[EDUCATION_DELIVERIES] == []
    assert all(r.key != GATE_ORG.encode() for t, rs in flow.seen.items() if t != topics.GATE_QUARANTINE for r in rs)
