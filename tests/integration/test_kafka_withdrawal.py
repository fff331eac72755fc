"""A consent withdrawal that reaches one gate replica stops a share held by another (issue 12).

Two `mash serve` replicas on one PostgreSQL ledger share the gate's consumer group on the Apache Kafka cluster.
A school's system (its own SCRAM principal, its own signing key) records a parent's consent to early help for
two children, then refers both to the early help team. Both referrals are sent to a partition the *first*
replica holds, so that replica decides them: each shares under consent, so each delivery waits the consent
settle window in the outbox (``not_before``). Then the parent of one child withdraws consent, and the
withdrawal is sent to a ``consent.record.v1`` partition the *second* replica holds. The second replica records
it and cancels the first replica's held share in the shared ledger; when the window has passed, the other
child's share (consent standing) is on the early help team's topic and the withdrawn one never is.

The replica that handled each record is read from the replicas' own logs, so the test fails if both ran on one.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from services.kafka_cluster import KafkaCluster

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import GATE_GROUP
from mash_broker.contracts import Envelope, deterministic_id, topics
from mash_broker.core.audit.keys import Ed25519Signer
from mash_broker.core.messages import outbox_id
from mash_broker.core.signing import sign

from .conftest import GATE_PASSWORD, GATE_USER, SCHOOL_PASSWORD, SCHOOL_USER
from .helpers import Proc, mash_session, signing_key, wait_for
from .kafka_support import pg, sasl_env, start_gates
from .test_consent_withdrawal import EARLY_HELP, SCHOOL, child, consent_record, referral

pytestmark = pytest.mark.kafka

SETTLE_S = 10.0  # the consent settle window: long enough for a withdrawal to cross the cluster on a slow machine
DELIVERIES = REGISTRY.delivery_topic(EARLY_HELP)  # mash.delivery.v1
DECIDE_TIMEOUT_S = 60.0


# ------------------------------------------------------------------------------------ the gate's group


def assignment(cluster: KafkaCluster) -> dict[str, set[tuple[str, int]]]:
    """The gate group's members and the partitions each holds, once the group is stable."""

    async def main() -> dict[str, set[tuple[str, int]]]:
        admin = AIOKafkaAdminClient(**cluster.sasl_kwargs(), request_timeout_ms=20_000)
        await admin.start()
        try:
            [described] = await admin.describe_consumer_groups([GATE_GROUP])
            _error, _group, state, _ptype, _protocol, members, *_ = described.groups[0]
            if state != "Stable":
                return {}
            held: dict[str, set[tuple[str, int]]] = {}
            for member in members:
                member_id, raw = member[0], member[-1]
                decoded = ConsumerProtocolMemberAssignment.decode(raw) if raw else None
                held[member_id] = {(t, p) for t, ps in (decoded.assignment if decoded else []) for p in ps}
            return held
        finally:
            await admin.close()

    return asyncio.run(main())


def two_members_holding_both_topics(cluster: KafkaCluster) -> dict[str, set[tuple[str, int]]] | None:
    held = assignment(cluster)
    wanted = {EDUCATION_INBOUND, topics.CONSENT_RECORDS}
    if len(held) == 2 and all(wanted <= {t for t, _ in parts} for parts in held.values()):
        return held
    return None


def partition_of(parts: set[tuple[str, int]], topic: str) -> int:
    return min(p for t, p in parts if t == topic)


# ------------------------------------------------------------------------------------ the school's system


def send(cluster: KafkaCluster, key: Ed25519Signer, sends: list[tuple[str, int, Envelope]]) -> None:
    """Sign each envelope with the school's key and send it to (topic, partition) as the school's principal."""

    async def main() -> None:
        producer = AIOKafkaProducer(
            **cluster.sasl_kwargs(SCHOOL_USER, SCHOOL_PASSWORD), enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            for topic, partition, message in sends:
                value = sign(message, key).model_dump_json().encode()
                await producer.send_and_wait(
                    topic, value, key=str(message.correlation_id).encode(), partition=partition
                )
        finally:
            await producer.stop()

    asyncio.run(main())


# ------------------------------------------------------------------------------------ the ledger and the wire


def decision(url: str, message: Envelope) -> tuple[str, list[str]] | None:
    rows = pg(url, "SELECT verdict, reasons FROM decisions WHERE message_id = $1", str(message.message_id))
    return (rows[0][0], json.loads(rows[0][1])) if rows else None


def decided(url: str, message: Envelope, what: str) -> tuple[str, list[str]]:
    return wait_for(f"the gate to decide {what}", lambda: decision(url, message), DECIDE_TIMEOUT_S, 0.2)


def delivery_id(message: Envelope) -> uuid.UUID:
    return deterministic_id("delivery", str(message.message_id), EARLY_HELP)


def outbox_row(url: str, message: Envelope) -> dict[str, datetime | None]:
    [row] = pg(
        url,
        "SELECT created_at, not_before, cancelled_at, published_at FROM outbox WHERE outbox_id = $1",
        str(outbox_id(delivery_id(message), DELIVERIES)),
    )
    return dict(row)


def shares_on_the_wire(cluster: KafkaCluster) -> set[str]:
    """The source message ids of every early-help delivery on the delivery topic, read to its end as the admin."""

    async def main() -> set[str]:
        consumer = AIOKafkaConsumer(**cluster.sasl_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(DELIVERIES, p) for p in sorted(consumer.partitions_for_topic(DELIVERIES) or {0})]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found: set[str] = set()
            deadline = time.monotonic() + 60
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                assert time.monotonic() < deadline, f"reading {DELIVERIES} to {ends} took over 60 s"
                for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
                    for record in records:
                        payload = json.loads(record.value)["payload"]
                        if payload.get("recipient") == EARLY_HELP:
                            found.add(payload["source_message_id"])
            return found
        finally:
            await consumer.stop()

    return asyncio.run(main())


def handled_by(gates: list[Proc], message: Envelope) -> list[int]:
    """Which replicas (their index) logged deciding ``message``."""
    needle = f'"message_id": "{message.message_id}"'
    return [
        i
        for i, gate in enumerate(gates)
        if any('"event": "message.decided"' in line and needle in line for line in gate.stderr().splitlines())
    ]


def until(what: str, check: Callable[[], Any], timeout_s: float = DECIDE_TIMEOUT_S) -> Any:
    return wait_for(what, check, timeout_s, 0.25)


# ------------------------------------------------------------------------------------ the test


def test_a_withdrawal_one_replica_reads_stops_a_share_another_replica_holds(
    cluster: KafkaCluster, ledger_url: str, tmp_path: Path
) -> None:
    gate_env = sasl_env(cluster, GATE_USER, GATE_PASSWORD, tmp_path)
    with mash_session(tmp_path, MASH_DATABASE_URL=ledger_url, MASH_CONSENT_SETTLE_S=str(SETTLE_S)) as mash:
        school_key = signing_key(mash, SCHOOL)  # registered before the gates start: they verify with it
        gates = start_gates(mash, gate_env, 2)
        held = until(
            "two gate replicas, each holding inbound and consent partitions",
            lambda: two_members_holding_both_topics(cluster),
        )
        first_member, second_member = sorted(held)
        referrals_to = partition_of(held[first_member], EDUCATION_INBOUND)
        withdrawal_to = partition_of(held[second_member], topics.CONSENT_RECORDS)

        # A parent consents to early help for each of two children (recorded by whichever replica).
        withdrawn_child, standing_child = child("Zorana", "Quornwick"), child("Brixett", "Ploveby")
        consent_ids = [uuid.uuid4(), uuid.uuid4()]
        given_at = datetime.now(UTC) - timedelta(minutes=5)
        consents = [
            consent_record(subject, cid, "given", given_at)
            for subject, cid in zip((withdrawn_child, standing_child), consent_ids, strict=True)
        ]
        send(cluster, school_key, [(topics.CONSENT_RECORDS, withdrawal_to, c) for c in consents])
        for consent in consents:
            assert decided(ledger_url, consent, "a consent") == ("recorded", ["consent_recorded"])

        # Both referrals go to a partition of the first replica: it decides them, and their shares wait.
        withdrawn_share, standing_share = referral(withdrawn_child), referral(standing_child)
        send(cluster, school_key, [(EDUCATION_INBOUND, referrals_to, r) for r in (withdrawn_share, standing_share)])
        for share in (withdrawn_share, standing_share):
            verdict, reasons = decided(ledger_url, share, "a referral")
            assert verdict == "share", reasons
            assert "consent_given" in reasons
        waiting = outbox_row(ledger_url, withdrawn_share)
        assert waiting["created_at"] is not None
        assert waiting["not_before"] is not None
        assert waiting["not_before"] == waiting["created_at"] + timedelta(seconds=SETTLE_S), "held for the window"
        assert waiting["published_at"] is None
        assert waiting["cancelled_at"] is None

        # The parent withdraws; the withdrawal goes to a consent partition of the second replica.
        withdrawal = consent_record(withdrawn_child, consent_ids[0], "withdrawn", datetime.now(UTC))
        send(cluster, school_key, [(topics.CONSENT_RECORDS, withdrawal_to, withdrawal)])
        assert decided(ledger_url, withdrawal, "the withdrawal") == ("recorded", ["consent_recorded"])
        stopped = outbox_row(ledger_url, withdrawn_share)
        assert stopped["cancelled_at"] is not None, "the held share was cancelled"
        assert stopped["cancelled_at"] < waiting["not_before"], "the withdrawal arrived while the share waited"

        # The other child's share goes out once its window has passed: held shares are published here.
        until(
            "the standing share on the delivery topic",
            lambda: str(standing_share.message_id) in shares_on_the_wire(cluster),
            SETTLE_S + DECIDE_TIMEOUT_S,
        )
        # Well past the withdrawn share's window, it has still not gone, and the ledger says why.
        time.sleep(max(0.0, (waiting["not_before"] - datetime.now(UTC)).total_seconds() + 3.0))
        on_the_wire = shares_on_the_wire(cluster)
        assert str(standing_share.message_id) in on_the_wire
        assert str(withdrawn_share.message_id) not in on_the_wire, "a share withdrawn while it waited was published"
        assert outbox_row(ledger_url, withdrawn_share)["published_at"] is None
        assert decision(ledger_url, withdrawn_share) == ("withhold", ["consent_withdrawn"])
        [(detail,)] = pg(
            ledger_url,
            "SELECT detail FROM events WHERE message_id = $1 AND event_type = 'share.withdrawn'",
            str(withdrawn_share.message_id),
        )
        event = json.loads(detail)
        assert (event["reason"], event["consent_id"]) == ("consent_withdrawn", str(consent_ids[0]))
        assert event["delivery_id"] == str(delivery_id(withdrawn_share))
        assert decision(ledger_url, standing_share)[0] == "share"  # type: ignore[index]

        # One replica decided the share, the other the withdrawal.
        [decider] = handled_by(gates, withdrawn_share)
        [withdrawer] = handled_by(gates, withdrawal)
        assert decider != withdrawer, f"both records were handled by replica {decider}: the test proved nothing"
        assert all(g.running() for g in gates)
        for gate in gates:
            assert gate.stop() == 0
    print(
        f"withdrawal: share decided by replica {decider}, withdrawal by replica {withdrawer}; cancelled "
        f"{(waiting['not_before'] - stopped['cancelled_at']).total_seconds():.1f} s before the share was due"
    )
