"""Raw Kafka records on every inbound topic, and on each agency inbox's delivery topic, through the real
app on the in-memory broker: each bad record is answered naming it (its message id when it has one) and
the field, is quarantined with its reason (and parked on the dead-letter topic with error headers when it
cannot be read), never quotes a value, and a valid record sent behind it on the same topic still goes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest

from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import Envelope, ReceiptStatus, SystemReceipt
from mash_broker.core.intake import DEAD_LETTERS, MAX_DEPTH
from mash_broker.core.messages import MAX_MESSAGE_BYTES

from .conftest import FAMILY, GIVEN, SENDER_ON, Flow, assert_unquoted, contact_doc, notification_doc

pytestmark = pytest.mark.asyncio(loop_scope="module")

Doc = dict[str, Any]


@dataclass(frozen=True)
class Bad:
    """A bad record: how to make it (given a valid document and the flow), the reason code the gate
    quarantines it with, the field its detail names, and whether the sender can be told (a receipt)."""

    make: Callable[[Doc, Flow], bytes]
    reason: str
    field: str
    receipt: bool
    parked: bool  # unreadable: parked on the dead-letter topic too


def _json(doc: Doc) -> bytes:
    return json.dumps(doc).encode()


def _edit(path: str, value: object) -> Callable[[Doc, Flow], bytes]:
    def make(doc: Doc, _flow: Flow) -> bytes:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value
        return _json(doc)

    return make


def _drop(path: str) -> Callable[[Doc, Flow], bytes]:
    def make(doc: Doc, _flow: Flow) -> bytes:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]
        return _json(doc)

    return make


def _twice(doc: Doc, _flow: Flow) -> bytes:
    text = json.dumps(doc)
    return text.replace(f'"given_name": "{GIVEN}"', f'"given_name": "{FAMILY}", "given_name": "{GIVEN}"').encode()


def _unsigned(doc: Doc, _flow: Flow) -> bytes:
    return _json(doc)


def _tampered(doc: Doc, flow: Flow) -> bytes:
    signed = json.loads(flow.signed(doc))
    signed["payload"]["what_happened"] = "Changed after signing at Snargleby."
    return _json(signed)


def _other_org(doc: Doc, flow: Flow) -> bytes:
    other = "la:999" if doc["sender_org"] != "la:999" else "school:900001"
    signature = json.loads(flow.signed({**doc, "sender_org": other}))["signature"]
    return _json({**doc, "signature": signature})


def _as_gate(doc: Doc, flow: Flow) -> bytes:
    return flow.signed({**doc, "sender_org": "mash:gate"})


def _salt(doc: Doc) -> bytes:
    """Bytes that differ per case: the gate quarantines the same bytes once, however often they come."""
    return doc["message_id"].encode()


def _deep(doc: Doc, _flow: Flow) -> bytes:
    return b'{"a":' * 100_000 + json.dumps([GIVEN, doc["message_id"]]).encode() + b"}" * 100_000


def _just_over_depth(doc: Doc, _flow: Flow) -> bytes:
    doc["payload"]["what_happened"] = "x"
    nested: Any = GIVEN
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    return _json({**doc, "extra": nested})


BAD: dict[str, Bad] = {
    "100000-deep": Bad(_deep, "nesting_too_deep", "(record)", receipt=False, parked=True),
    "one-over-the-depth-limit": Bad(_just_over_depth, "nesting_too_deep", "(record)", receipt=True, parked=True),
    "over-the-size-limit": Bad(
        lambda d, _f: _edit("payload.what_happened", GIVEN * (MAX_MESSAGE_BYTES // len(GIVEN)))(d, _f),
        "message_too_large",
        "(record)",
        receipt=True,
        parked=True,
    ),
    "not-utf-8": Bad(
        lambda d, _f: _json(d).replace(GIVEN.encode(), b"\xff\xfe" + GIVEN.encode()),
        "contract_invalid",
        "(record)",
        receipt=False,
        parked=True,
    ),
    "nul-bytes": Bad(
        lambda d, _f: b"\x00" * 4096 + _salt(d), "contract_invalid", "(record)", receipt=False, parked=True
    ),
    "truncated-json": Bad(lambda d, _f: _json(d)[:-40], "contract_invalid", "(record)", receipt=False, parked=True),
    "empty-or-blank": Bad(
        lambda d, _f: b" " * sorted(SENDER_ON.values()).index(d["sender_org"]),
        "contract_invalid",
        "(record)",
        receipt=False,
        parked=True,
    ),
    "json-not-an-object": Bad(
        lambda d, _f: _json([GIVEN, FAMILY, d["message_id"]]),
        "contract_invalid",
        "(message)",
        receipt=False,
        parked=True,
    ),
    "key-given-twice": Bad(_twice, "duplicate_key", "subject.given_name", receipt=True, parked=True),
    "no-correlation-id": Bad(_drop("correlation_id"), "contract_invalid", "correlation_id", receipt=True, parked=True),
    "produced-at-not-a-time": Bad(
        _edit("produced_at", GIVEN), "contract_invalid", "produced_at", receipt=True, parked=True
    ),
    "dob-not-a-date": Bad(
        _edit("subject.date_of_birth", FAMILY), "contract_invalid", "subject.date_of_birth", receipt=True, parked=True
    ),
    "unknown-field": Bad(_edit("nickname", GIVEN), "contract_invalid", "nickname", receipt=True, parked=True),
    "unknown-kind": Bad(_edit("kind", "contact.gossip"), "contract_invalid", "kind", receipt=True, parked=True),
    "kind-a-name": Bad(_edit("kind", f"{GIVEN} {FAMILY}"), "contract_invalid", "kind", receipt=True, parked=True),
    "unsigned": Bad(_unsigned, "unsigned", "signature", receipt=True, parked=False),
    "malformed-signature": Bad(
        _edit("signature", f"ed25519:{GIVEN}"), "malformed_signature", "signature", receipt=True, parked=False
    ),
    "signed-by-another-org": Bad(_other_org, "sender_mismatch", "key", receipt=True, parked=False),
    "changed-after-signing": Bad(_tampered, "bad_signature", "signature", receipt=True, parked=False),
    "sent-as-the-gate": Bad(_as_gate, "sender_is_gate", "sender_org", receipt=False, parked=False),
}


async def delivered(flow: Flow, message_id: str) -> int:
    return sum(1 for d in await flow.ledger.deliveries_for("mash:hub") if d.message_id == message_id)


def receipts_for(flow: Flow, message_id: str) -> list[SystemReceipt]:
    found = []
    for topic in (t for t in REGISTRY.outbound_topics if t.endswith(".receipt.v1")):
        for record in flow.seen[topic]:
            payload = Envelope.model_validate_json(record.value).payload
            if isinstance(payload, SystemReceipt) and str(payload.receipted_message_id) == message_id:
                found.append(payload)
    return found


@pytest.mark.parametrize("topic", REGISTRY.inbound_topics)
@pytest.mark.parametrize("case", list(BAD))
async def test_a_bad_record_is_answered_quarantined_and_the_next_one_goes(
    flow: Flow, logs: StringIO, topic: str, case: str
) -> None:
    bad = BAD[case]
    sender = SENDER_ON[topic]
    doc = contact_doc(sender)
    raw = bad.make(doc, flow)
    neighbour = flow.signed(contact_doc(sender))
    mark = flow.mark()

    await flow.send(raw, topic)
    await flow.send(neighbour, topic)

    # The valid record behind it went through: one delivery to the hub, accepted.
    good_id = str(Envelope.model_validate_json(neighbour).message_id)
    assert await delivered(flow, good_id) == 1
    assert [r.status for r in receipts_for(flow, good_id)][:1] == [ReceiptStatus.ACCEPTED]
    # Nothing lost: the bad one is quarantined, with its reason and the field named.
    [(mid, _who, where, reason, detail)] = flow.quarantined_since(mark)
    assert (where, reason) == (topic, bad.reason)
    if bad.field != "(record)":
        assert bad.field in detail, detail
    if bad.receipt:  # its sender is told, naming the record by its message id
        assert mid == doc["message_id"]
        [receipt] = receipts_for(flow, str(mid))
        assert (receipt.status, receipt.reason_code) == (ReceiptStatus.REJECTED, bad.reason)
        assert_unquoted(receipt.model_dump_json())
    parked = flow.seen_since(mark, DEAD_LETTERS)
    if bad.parked:  # named by where it was: topic, partition, offset
        [letter] = parked
        assert letter.headers["dead-letter-reason"] == bad.reason
        assert letter.headers["dead-letter-source-topic"] == topic
        assert letter.headers["dead-letter-offset"].isdigit()
        assert_unquoted(*letter.headers.values())
    else:
        assert parked == []
    assert flow.messages_since(mark) == 1  # the neighbour only
    assert_unquoted(detail, logs.getvalue())


INBOX_BAD = {
    "100000-deep": lambda: b"[" * 100_000 + b"]" * 100_000,
    "not-json": lambda: f"not json {GIVEN}".encode(),
    "not-a-delivery": lambda: json.dumps({"kind": "delivery", "sender_org": "mash:gate", "x": FAMILY}).encode(),
}


@pytest.mark.parametrize("topic", [sub.topic for sub in REGISTRY.inboxes])
@pytest.mark.parametrize("case", list(INBOX_BAD))
async def test_a_bad_record_on_an_inbox_is_parked_and_the_inboxes_go_on(
    flow: Flow, logs: StringIO, topic: str, case: str
) -> None:
    mark = flow.mark()
    await flow.send(INBOX_BAD[case](), topic)
    neighbour = flow.signed(notification_doc())
    await flow.send(neighbour, "police.notification.v1")

    [letter] = flow.seen_since(mark, DEAD_LETTERS)
    assert letter.headers["dead-letter-source-topic"] == topic
    assert letter.headers["dead-letter-reason"] in ("nesting_too_deep", "contract_invalid")
    assert letter.headers["dead-letter-subscriber"].endswith("-inbox")
    good_id = str(Envelope.model_validate_json(neighbour).message_id)
    [delivery] = [d for d in await flow.ledger.deliveries_for("school:900001") if d.message_id == good_id]
    assert delivery.delivered_at is not None
    assert_unquoted(*letter.headers.values(), logs.getvalue())


@pytest.mark.parametrize("topic", REGISTRY.inbound_topics)
async def test_a_message_id_reused_with_other_content_is_refused_and_the_first_kept(
    flow: Flow, logs: StringIO, topic: str
) -> None:
    sender = SENDER_ON[topic]
    first = contact_doc(sender)
    other = {**contact_doc(sender), "message_id": first["message_id"]}
    mark = flow.mark()

    await flow.send(flow.signed(first), topic)
    await flow.send(flow.signed(other), topic)

    assert await delivered(flow, first["message_id"]) == 1  # the first stands; the second is not "accepted"
    [(mid, _who, where, reason, detail)] = flow.quarantined_since(mark)
    assert (mid, where, reason) == (first["message_id"], topic, "message_id_reused")
    assert "message_id" in detail
    statuses = [(r.status, r.reason_code) for r in receipts_for(flow, first["message_id"])]
    assert (ReceiptStatus.REJECTED, "message_id_reused") in statuses
    assert flow.messages_since(mark) == 1
    assert_unquoted(detail, logs.getvalue())
