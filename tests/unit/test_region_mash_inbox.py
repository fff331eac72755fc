"""The MASH's inbox (issue 15) takes what is delivered to a MASH, the council or early help on
``mash.delivery.v1``; what else travels there (a clock's alert to an ``la:`` role, an outcome delivered to a
police referrer) is quietly not its own, and anything it cannot judge by a glance (unreadable, sealed) goes
to the shared inbox, which answers it as every inbox does."""

from __future__ import annotations

import json

import pytest

from mash_broker.agencies.mash.agency import MASH
from mash_broker.agencies.mash.inbox import _may_be_ours
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import topics


def record(payload: object) -> bytes:
    return json.dumps({"message_id": "m", "payload": payload}).encode()


@pytest.mark.parametrize(
    ("raw", "ours"),
    [
        (record({"kind": "delivery", "recipient": "mash:998"}), True),
        (record({"kind": "delivery", "recipient": "la:999"}), True),
        (record({"kind": "delivery", "recipient": "early_help:team-north"}), True),
        (record({"kind": "delivery.withdrawn", "recipient": "mash:998"}), True),
        (record({"kind": "delivery", "recipient": "police:examplepolice"}), False),
        (record({"kind": "clock.alert", "escalate_to": "la:assessment-team-manager"}), False),
        (record("sealed to the recipient"), True),
        (json.dumps({"message_id": "m", "ciphertext": "..."}).encode(), True),
        (b"not json at all", True),
        (b"[1, 2]", True),
    ],
)
def test_the_mash_inbox_takes_only_what_is_delivered_to_the_mash(raw: bytes, ours: bool) -> None:
    assert _may_be_ours(raw) is ours


def test_the_mash_inbox_is_subscribed_to_the_mash_delivery_topic() -> None:
    assert MASH.inbox is not None
    assert ("mash", topics.MASH_DELIVERIES) in {(s.agency, s.topic) for s in REGISTRY.inboxes}
