"""Records no subscriber can act on, over the embedded broker (issue 11, problems 1 and 11).

One `mash up` serves the module. On one partition of ``police.notification.v1``, in this order: a
100,000-deep JSON array, 900 kB of random bytes, NULs, a signed notification with a key given twice,
then a genuine notification behind them all. A contact claiming to come from the gate itself goes on
``mash.inbound.v1`` and a 100,000-deep array on the schools' delivery topic (an inbox subscriber).
The genuine notification must reach its school within a bounded time; each bad record is quarantined
with its reason (the gate's) and parked on ``gate.deadletter.v1`` with error headers.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.contracts import Envelope, topics
from mash_broker.core.intake import DEAD_LETTERS, nesting_depth
from mash_broker.core.signing import sign

from .helpers import DEMO, Mash, mash_session, read_topic, signing_key, wait_for

pytestmark = pytest.mark.embedded

FORCE = "police:examplepolice"
URN = "900001"
DEEP = b"[" * 100_000 + b"]" * 100_000
RANDOM = random.Random(11).randbytes(900_000)  # noqa: S311 (test data, not secrets)
NULS = b"\x00" * 4096
PARTITION_KEY = b"examplepolice"  # one key: one partition, so the bad records are in front of the genuine one
DELIVERED_WITHIN_S = 60


def notification(given: str, family: str) -> Envelope:
    now = datetime.now(UTC)
    reference = f"BAD/2026/{uuid.uuid4().hex[:6]}"
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "notification.encompass",
            "sender_org": FORCE,
            "sender_local_id": reference,
            "correlation_id": uuid.uuid4(),
            "produced_at": now,
            "subject": {"given_name": given, "family_name": family, "date_of_birth": "2016-09-03"},
            "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
            "payload": {
                "kind": "notification.encompass",
                "police_reference": reference,
                "force": "examplepolice",
                "occurred_at": (now - timedelta(hours=10)).isoformat(),
                "reported_at": (now - timedelta(hours=9)).isoformat(),
                "child_present": "yes",
                "school_urn": URN,
                "summary_for_school": "Officers attended a synthetic incident.",
            },
        }
    )


def gate_contact() -> dict[str, Any]:
    """A contact claiming to be from the gate (mash:gate), sent from outside."""
    return {
        "message_id": str(uuid.uuid4()),
        "kind": "contact",
        "sender_org": "mash:gate",
        "correlation_id": str(uuid.uuid4()),
        "produced_at": datetime.now(UTC).isoformat(),
        "subject": {"given_name": "Wilhelmina", "family_name": "Crossthwaite", "date_of_birth": "2015-03-02"},
        "lawful_basis": {
            "article6": "public_task",
            "statutory_power": "children_act_1989_s47",
            "article9": "dpa2018_sch1_para18",
            "consent_not_used_because": "would_put_child_at_risk",
        },
        "recipients": ["mash:hub"],
        "payload": {
            "kind": "contact",
            "referrer_name": "Synthetic Officer",
            "referrer_role": "Officer",
            "what_happened": "Synthetic concern.",
            "worried_about": "Synthetic worry.",
            "consent_sought": False,
        },
    }


def produce(bootstrap: str, records: list[tuple[str, bytes, list[tuple[str, bytes]]]]) -> None:
    """Each record on its topic with one key and its headers, acknowledged (acks=all) before the next."""
    from aiokafka import AIOKafkaProducer

    from mash_broker.app.kafka import producer_kwargs

    async def main() -> None:
        kwargs = producer_kwargs(bootstrap, embedded=True)
        producer = AIOKafkaProducer(**{**kwargs, "max_request_size": 2_000_000})
        await producer.start()
        try:
            for topic, value, headers in records:
                await producer.send_and_wait(topic, value, key=PARTITION_KEY, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(main())


@dataclass
class Sent:
    mash: Mash
    genuine: Envelope
    duplicated: Envelope
    gate_contact: dict[str, Any]
    dead_letters: list[Any]


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    with mash_session(tmp_path_factory.mktemp("bad-records")) as mash:
        key = signing_key(mash, FORCE)
        mash.up()
        load = mash.run("school", "load", str(DEMO / "schools.csv"))
        assert load.returncode == 0, load
        genuine = sign(notification("Marigold", "Pennywhistle"), key)
        duplicated = sign(notification("Barnaby", "Quickfoot"), key)
        # The key given twice: before the fix the last one won (and the signature held).
        twice = duplicated.model_dump_json().replace(
            f'"school_urn":"{URN}"', f'"school_urn":"900002","school_urn":"{URN}"'
        )
        assert twice.count('"school_urn"') == 2
        contact = gate_contact()
        produce(
            mash.bootstrap(),
            [
                (POLICE_NOTIFICATIONS, DEEP, [("trace-id", b"deep-1")]),
                (POLICE_NOTIFICATIONS, RANDOM, []),
                (POLICE_NOTIFICATIONS, NULS, []),
                (POLICE_NOTIFICATIONS, twice.encode(), []),
                (topics.MASH_INBOUND, json.dumps(contact).encode(), []),
                (EDUCATION_DELIVERIES, DEEP, []),
                (POLICE_NOTIFICATIONS, genuine.model_dump_json().encode(), []),
            ],
        )

        def delivered() -> bool:
            return (
                mash.scalar(
                    "SELECT count(*) FROM deliveries WHERE message_id = ? AND delivered_at IS NOT NULL",
                    str(genuine.message_id),
                )
                == 1
            )

        wait_for(
            "the genuine notification behind the bad records to reach its school", delivered, DELIVERED_WITHIN_S, 0.2
        )
        letters = wait_for(
            "five records on the dead-letter topic",
            lambda: (r := read_topic(mash.bootstrap(), DEAD_LETTERS)) and len(r) >= 5 and r,
            DELIVERED_WITHIN_S,
            0.5,
        )
        yield Sent(mash, genuine, duplicated, contact, letters)


def quarantined(mash: Mash) -> list[tuple[str, str | None, str, str]]:
    return [(r, m, t, d) for r, m, t, d in mash.sql("SELECT reason_code, message_id, topic, detail FROM quarantine")]


def test_the_genuine_notification_behind_the_bad_records_is_delivered(sent: Sent) -> None:
    [(verdict,)] = sent.mash.sql("SELECT verdict FROM decisions WHERE message_id = ?", str(sent.genuine.message_id))
    assert verdict == "share"


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (DEEP, "nesting_too_deep", "nested 100000 deep, over the limit of 64"),
        # Random bytes hold brackets: the nesting check (no parse) finds them first.
        (RANDOM, "nesting_too_deep", f"nested {nesting_depth(RANDOM)} deep, over the limit of 64"),
        (NULS, "contract_invalid", "Invalid JSON: Expecting value at line 1 column 1"),
    ],
    ids=["deep", "random-bytes", "nuls"],
)
def test_each_unreadable_record_is_quarantined_with_its_reason(
    sent: Sent, raw: bytes, reason: str, detail: str
) -> None:
    assert nesting_depth(RANDOM) > 64
    found = [(r, t) for r, _, t, d in quarantined(sent.mash) if d == detail]
    assert found == [(reason, POLICE_NOTIFICATIONS)]
    [letter] = [
        r
        for r in sent.dead_letters
        if r.value == raw and dict(r.headers)["dead-letter-source-topic"] == POLICE_NOTIFICATIONS.encode()
    ]
    assert dict(letter.headers)["dead-letter-reason"] == reason.encode()


def test_a_key_given_twice_is_refused_naming_its_path(sent: Sent) -> None:
    mid = str(sent.duplicated.message_id)
    [(reason, detail)] = sent.mash.sql("SELECT reason_code, detail FROM quarantine WHERE message_id = ?", mid)
    assert (reason, detail) == ("duplicate_key", "payload.school_urn: key given more than once")
    assert sent.mash.sql("SELECT count(*) FROM messages WHERE message_id = ?", mid) == [(0,)]
    [(status, code)] = [(p["status"], p["reason_code"]) for p in receipts_for(sent, mid)]
    assert (status, code) == ("rejected", "duplicate_key")


def test_only_the_gate_sends_as_the_gate(sent: Sent) -> None:
    mid = sent.gate_contact["message_id"]
    [(reason, sender)] = sent.mash.sql("SELECT reason_code, sender_org FROM quarantine WHERE message_id = ?", mid)
    assert (reason, sender) == ("sender_is_gate", "mash:gate")
    assert sent.mash.sql("SELECT count(*) FROM messages WHERE message_id = ?", mid) == [(0,)]
    # No receipt loop: nothing is queued to the gate itself but the quarantine notice.
    assert sent.mash.sql("SELECT topic FROM outbox WHERE key = 'mash:gate'") == [(topics.GATE_QUARANTINE,)]


def receipts_for(sent: Sent, mid: str) -> list[dict[str, Any]]:
    rows = sent.mash.sql("SELECT value FROM outbox WHERE topic = 'police.receipt.v1'")
    payloads = [json.loads(v)["payload"] for (v,) in rows]
    return [p for p in payloads if p.get("receipted_message_id") == mid]


def test_each_unreadable_record_is_parked_on_the_dead_letter_topic_with_error_headers(sent: Sent) -> None:
    def headers(record: Any) -> dict[str, str]:
        return {k: v.decode() for k, v in record.headers}

    parked = [
        (headers(r)["dead-letter-source-topic"], headers(r)["dead-letter-reason"], r.value) for r in sent.dead_letters
    ]
    assert sorted((t, reason) for t, reason, _ in parked) == sorted(
        [
            (POLICE_NOTIFICATIONS, "nesting_too_deep"),
            (POLICE_NOTIFICATIONS, "nesting_too_deep"),
            (POLICE_NOTIFICATIONS, "contract_invalid"),
            (POLICE_NOTIFICATIONS, "duplicate_key"),
            (EDUCATION_DELIVERIES, "nesting_too_deep"),
        ]
    )
    assert {v for _, _, v in parked} >= {DEEP, RANDOM, NULS}, "parked as sent, byte for byte"
    [deep] = [
        headers(r)
        for r in sent.dead_letters
        if headers(r)["dead-letter-source-topic"] == POLICE_NOTIFICATIONS and r.value == DEEP
    ]
    assert deep["trace-id"] == "deep-1", "the original headers are kept"
    assert deep["dead-letter-subscriber"] == "gate"
    for record in sent.dead_letters:
        h = headers(record)
        assert int(h["dead-letter-partition"]) >= 0
        assert int(h["dead-letter-offset"]) >= 0
        assert h["dead-letter-detail"]


def test_nothing_was_retried_as_an_infrastructure_error(sent: Sent) -> None:
    up = next(f for f in sent.mash.log_files() if f.name.endswith("-up.stderr")).read_text()
    assert "infra_error" not in up
    assert "Traceback" not in up
