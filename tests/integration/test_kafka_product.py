"""The product on a real Apache Kafka cluster: `mash serve`, `mash school load` and `mash police ingest` as
processes, over SASL_SSL (SCRAM-SHA-512) and mutual TLS, each principal held to the ACLs `mash kafka acls
--apply` derived from the agency registry, the ledger on the test PostgreSQL (a fresh database per test).

The cluster is the session's (tests/integration/conftest.py), shared with test_kafka_cluster.py, so the
product's topics may already exist (that module uses ``police.notification.v1`` and
``education.delivery.v1``): the session fixture (kafka_support.py) grows them to the product's partition
count, and before each test the gate's and the inboxes' consumer groups are moved to the end of their topics,
so a test's fresh ledger never sees an earlier test's messages. Figures measured here are in docs/kafka.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError
from services.kafka_cluster import KafkaCluster

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import GATE_GROUP
from mash_broker.app.kafka_acl_wire import create_acls, describe_acls
from mash_broker.app.kafka_acls import AclBinding, agency_acls, derive_acls, gate_acls, parse_principals
from mash_broker.core.intake import DEAD_LETTERS

from .conftest import GATE_PASSWORD, GATE_USER, POLICE_PASSWORD, POLICE_USER, SCHOOL_PASSWORD, SCHOOL_USER
from .helpers import DEMO, SCHOOL, mash_session, wait_for
from .kafka_support import (
    GATE_TLS,
    PARTITIONS,
    POLICE_TLS,
    REPLICAS,
    SASL_PRINCIPALS,
    SCHOOL_TLS,
    TLS_PRINCIPALS,
    Prepared,
    Samples,
    admin_security,
    assert_each_once,
    decided_by,
    group_members,
    partition_leader,
    pg_count,
    police_records,
    read_group,
    sasl_env,
    settle,
    start_gates,
    tls_env,
)
from .synthetic_export import write_export

pytestmark = pytest.mark.kafka

MESSAGES = "SELECT count(*) FROM messages"


# ------------------------------------------------------------------------------------ the ACLs themselves


def test_acls_are_derived_from_the_registry() -> None:
    principals = parse_principals(
        [f"{k}=User:{v}" for k, v in SASL_PRINCIPALS.items()], None, [a.name for a in REGISTRY.agencies]
    )
    acls = derive_acls(REGISTRY, principals)
    assert len(acls) == len(set(acls))

    def allowed(user: str, op: str) -> set[str]:
        return {
            b.name for b in acls if b.principal == f"User:{user}" and b.operation == op and b.resource_type == "Topic"
        }

    assert allowed(POLICE_USER, "WRITE") == {"police.notification.v1", "consent.record.v1"}
    assert allowed(POLICE_USER, "READ") == {"police.receipt.v1", "police.acknowledgement.v1"}
    assert "education.delivery.v1" in allowed(SCHOOL_USER, "READ")
    assert not {t for t in allowed(SCHOOL_USER, "READ") if t.endswith(".delivery.v1")} - {"education.delivery.v1"}
    assert allowed(SCHOOL_USER, "WRITE") == {"education.inbound.v1", "consent.record.v1"}
    # Only the gate reads the inbound topics, and it writes every delivery, receipt and queue topic.
    readers = {b.principal for b in acls if b.operation == "READ" and b.name in REGISTRY.inbound_topics}
    assert readers == {f"User:{GATE_USER}"}
    writers = {b.principal for b in acls if b.operation == "WRITE" and b.name in REGISTRY.outbound_topics}
    assert writers == {f"User:{GATE_USER}"}
    # It parks what no subscriber can act on: without WRITE there, the partition behind such a record would stop.
    assert allowed(GATE_USER, "WRITE") == {*REGISTRY.outbound_topics, DEAD_LETTERS}
    groups = {(b.principal, b.name, b.pattern) for b in acls if b.resource_type == "Group"}
    assert (f"User:{POLICE_USER}", "police.", "PREFIXED") in groups
    assert (f"User:{GATE_USER}", GATE_GROUP, "LITERAL") in groups
    # Every agency the registry knows gets its ACLs from the same rule: a new one needs no new code here.
    for agency in REGISTRY.agencies:
        assert agency_acls(REGISTRY, agency.name, "User:x") or not (agency.sender_areas or agency.delivery_topic)
    assert len(gate_acls(REGISTRY, "User:g")) > len(REGISTRY.all_topics)
    # kafka-acls.sh lines for an operator.
    line = AclBinding("User:p", "Group", "police.", "READ", pattern="PREFIXED").command("b:9093", "a.properties")
    assert line == (
        "kafka-acls.sh --bootstrap-server b:9093 --command-config a.properties --add "
        "--allow-principal User:p --operation Read --group police. --resource-pattern-type prefixed"
    )


def test_mash_kafka_acls_apply_creates_exactly_the_derived_acls(prepared: Prepared) -> None:
    for result, mapping in ((prepared.acls_sasl, SASL_PRINCIPALS), (prepared.acls_tls, TLS_PRINCIPALS)):
        assert result.returncode == 0, result
        printed = {AclBinding(**b) for b in result.json()}
        assert "ACLs created" in result.stderr, result
        expected = set(derive_acls(REGISTRY, {k: f"User:{v}" for k, v in mapping.items()}))
        assert printed == expected
        for agency, user in mapping.items():
            held = asyncio.run(
                describe_acls(prepared.cluster.bootstrap_sasl, admin_security(prepared.cluster), f"User:{user}")
            )
            assert set(held) == {b for b in expected if b.principal == f"User:{user}"}, agency
    # Creating them again is harmless (the wire module on its own).
    again = derive_acls(REGISTRY, {"police": f"User:{POLICE_USER}"})
    assert asyncio.run(create_acls(prepared.cluster.bootstrap_sasl, admin_security(prepared.cluster), again)) == 5


# ------------------------------------------------------------------------------------ the overnight path


@pytest.mark.parametrize("wire", ["sasl_ssl", "mutual_tls"])
def test_overnight_encompass_export_end_to_end(
    wire: str, cluster: KafkaCluster, ledger_url: str, tmp_path: Path
) -> None:
    """The demo's overnight export, as police's own principal, through a gate on its own principal, to the
    schools' inboxes; the police force reads its receipts with its own principal."""
    if wire == "sasl_ssl":
        gate_env = sasl_env(cluster, GATE_USER, GATE_PASSWORD, tmp_path)
        police_env = sasl_env(cluster, POLICE_USER, POLICE_PASSWORD, tmp_path)
        police_kwargs = cluster.sasl_kwargs(POLICE_USER, POLICE_PASSWORD)
    else:
        gate_env, police_env = tls_env(cluster, GATE_TLS), tls_env(cluster, POLICE_TLS)
        police_kwargs = cluster.mtls_kwargs(POLICE_TLS)
    with mash_session(tmp_path, MASH_DATABASE_URL=ledger_url) as mash:
        began = time.monotonic()
        [gate] = start_gates(mash, gate_env)
        ready_s = time.monotonic() - began
        load = mash.run("school", "load", str(DEMO / "schools.csv"))
        assert load.returncode == 0, load
        ingest = mash.run("police", "ingest", str(DEMO / "overnight-export.csv"), "--json", env=police_env)
        settle(ledger_url, 9, 60, [gate])
        inbox = mash.run("school", "inbox", SCHOOL, "--json")
        took = time.monotonic() - began
        assert gate.running(), gate.stderr()[-3000:]
        # Receipts for police, read by police's principal in a group of its own prefix.
        accepted = {r["message_id"] for r in ingest.json()["receipts"] if r["status"] in ("accepted", "referred")}

        def all_receipts(records: list[Any]) -> bool:
            return accepted <= {json.loads(r.value).get("causation_id") for r in records}

        receipts = read_group(police_kwargs, "police.receipt.v1", f"police.{uuid.uuid4().hex[:8]}", all_receipts)
        assert gate.stop() == 0

    assert ingest.returncode == 1, ingest  # line 10 of the demo export is invalid on purpose
    assert ingest.json()["counts"] == {"accepted": 9, "referred": 2, "rejected": 2}, ingest
    assert inbox.returncode == 0, inbox
    notifications = inbox.json()["notifications"]
    assert len(notifications) == 3  # the demo school's three children
    assert all(n["delivered_at"] and n["notify_by"] for n in notifications), notifications
    assert pg_count(ledger_url, "SELECT count(*) FROM messages") == 11
    assert pg_count(ledger_url, "SELECT count(DISTINCT message_id) FROM deliveries") == 9
    assert len(accepted) == 11
    receipt_ids = {json.loads(r.value)["causation_id"] for r in receipts}
    assert accepted <= receipt_ids, "every accepted or referred row's receipt reached police"

    # The topics `mash serve` created as the gate: six partitions, three replicas, two in sync for acks=all.
    async def described() -> tuple[Any, Any]:
        admin = AIOKafkaAdminClient(**cluster.sasl_kwargs(), request_timeout_ms=20_000)
        await admin.start()
        try:
            from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

            [topic] = await admin.describe_topics(["education.inbound.v1"])
            [configs] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "education.inbound.v1", {"min.insync.replicas": None})]
            )
            return topic, configs
        finally:
            await admin.close()

    topic, configs = asyncio.run(described())
    assert len(topic["partitions"]) == PARTITIONS
    assert all(len(p["replicas"]) == 3 for p in topic["partitions"])
    assert {e[0]: e[1] for e in configs.resources[0][4]} == {"min.insync.replicas": "2"}
    print(f"overnight over {wire}: gate ready in {ready_s:.1f} s, export to inbox in {took:.1f} s")


# ------------------------------------------------------------------------------------ refusals


def test_police_cannot_read_education_deliveries(cluster: KafkaCluster) -> None:
    async def subscribe() -> None:
        consumer = AIOKafkaConsumer(
            "education.delivery.v1",
            **cluster.sasl_kwargs(POLICE_USER, POLICE_PASSWORD),
            group_id=f"police.{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                while True:
                    await consumer.getmany(timeout_ms=500)
        finally:
            await consumer.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(subscribe())
    denials = cluster.log_lines(f"Principal = User:{POLICE_USER} is Denied")
    assert any("Topic:LITERAL:education.delivery.v1" in line for line in denials), denials[-5:]


@pytest.mark.parametrize("who", ["school_sasl", "school_tls"])
def test_a_school_cannot_write_police_topics(who: str, cluster: KafkaCluster, tmp_path: Path) -> None:
    """`mash police ingest` as a school system's principal: one line naming the topic, exit 1, no hang."""
    env = (
        sasl_env(cluster, SCHOOL_USER, SCHOOL_PASSWORD, tmp_path)
        if who == "school_sasl"
        else tls_env(cluster, SCHOOL_TLS)
    )
    with mash_session(tmp_path) as mash:  # its own SQLite ledger: nothing will reach a gate anyway
        began = time.monotonic()
        refused = mash.run("police", "ingest", str(DEMO / "overnight-export.csv"), env=env, timeout_s=60)
        took = time.monotonic() - began
    assert refused.returncode == 1, refused
    [line] = [line for line in refused.stderr.splitlines() if "kafka_topic_refused" in line]
    assert "topic police.notification.v1" in line, refused
    assert "mash kafka acls" in line, refused
    assert "Traceback" not in refused.stderr, refused
    assert refused.stdout == "", "no receipts: nothing was sent"
    assert took < 30, f"a refusal took {took:.1f} s"


@pytest.mark.parametrize("how", ["wrong_password", "no_client_certificate"])
def test_an_unauthenticated_client_is_refused_with_a_clear_error(
    how: str, cluster: KafkaCluster, tmp_path: Path
) -> None:
    env = (
        sasl_env(cluster, POLICE_USER, "not-" + POLICE_PASSWORD, tmp_path)
        if how == "wrong_password"
        else tls_env(cluster, None)
    )
    with mash_session(tmp_path) as mash:
        refused = mash.run("police", "ingest", str(DEMO / "overnight-export.csv"), env=env, timeout_s=60)
    assert refused.returncode == 3, refused  # EXIT_UNAVAILABLE
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("broker unavailable:")]
    assert "refused" in line, refused
    if how == "wrong_password":
        assert f"User:{POLICE_USER}" in line, refused
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in line, refused
        assert POLICE_PASSWORD not in refused.stderr
    else:
        assert "an unauthenticated client" in line, refused
    assert "Traceback" not in refused.stderr, refused
    assert refused.stdout == ""


def test_an_unreadable_record_is_parked_as_the_gates_principal_and_the_partition_goes_on(
    cluster: KafkaCluster, ledger_url: str, tmp_path: Path
) -> None:
    """Bytes that are no message, then a real notification, on one partition of police's topic: the gate parks
    the first on gate.deadletter.v1 with its own principal (the WRITE `mash kafka acls` derives for it; without
    it the gate retried the park as a broker failure, forever, and the notification behind it waited) and then
    decides the second."""
    junk = b"\x00\xffnot a message " + uuid.uuid4().hex.encode()
    export = tmp_path / "one.csv"
    write_export(export, 1, seed=31)
    gate_env = sasl_env(cluster, GATE_USER, GATE_PASSWORD, tmp_path)
    with mash_session(tmp_path, MASH_DATABASE_URL=ledger_url) as mash:
        [(key, value, headers)] = police_records(mash, export)
        [gate] = start_gates(mash, gate_env)

        async def police_sends() -> None:
            producer = AIOKafkaProducer(
                **cluster.sasl_kwargs(POLICE_USER, POLICE_PASSWORD), enable_idempotence=True, acks="all"
            )
            await producer.start()
            try:
                await producer.send_and_wait("police.notification.v1", junk, key=key, partition=0)
                await producer.send_and_wait("police.notification.v1", value, key=key, headers=headers, partition=0)
            finally:
                await producer.stop()

        asyncio.run(police_sends())
        wait_for("the notification behind the junk decided", lambda: pg_count(ledger_url, MESSAGES) == 1, 60, 0.25)
        assert gate.running()

        def parked(records: list[Any]) -> bool:
            return any(r.value == junk for r in records)

        found = read_group(cluster.sasl_kwargs(), DEAD_LETTERS, f"test.{uuid.uuid4().hex[:8]}", parked)
        assert gate.stop() == 0
    [letter] = [r for r in found if r.value == junk]
    headers_found = {k: v.decode() for k, v in letter.headers}
    assert headers_found["dead-letter-source-topic"] == "police.notification.v1"
    assert headers_found["dead-letter-partition"] == "0"
    assert headers_found["dead-letter-subscriber"] == "gate"
    assert "record.parked" in gate.stderr()


# ------------------------------------------------------------------------------------ three gate replicas

# Notifications for the replica tests. The figure is 10,000: MASH_KAFKA_TEST_NOTIFICATIONS=10000 runs it
# (docs/kafka.md, "Running it"); the default keeps the suite's time down. The waits grow with the count, at a floor
# of five notifications a second, so a large run is bounded by the gate's progress, not by a fixed time.
NOTIFICATIONS = int(os.environ.get("MASH_KAFKA_TEST_NOTIFICATIONS", "600"))
FAILOVER_NOTIFICATIONS = int(os.environ.get("MASH_KAFKA_TEST_FAILOVER_NOTIFICATIONS", "400"))


def test_three_gate_replicas_deliver_every_notification_once(
    cluster: KafkaCluster, ledger_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    write_export(export, NOTIFICATIONS)
    gate_env = sasl_env(cluster, GATE_USER, GATE_PASSWORD, tmp_path)
    police_env = sasl_env(cluster, POLICE_USER, POLICE_PASSWORD, tmp_path) | {"MASH_RECEIPT_TIMEOUT_S": "150"}
    with mash_session(tmp_path, MASH_DATABASE_URL=ledger_url) as mash:
        gates = start_gates(mash, gate_env, REPLICAS)
        assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
        wait_for("three members in the gate's group", lambda: group_members(cluster, GATE_GROUP) == REPLICAS, 60)
        began = time.monotonic()
        ingest = mash.run("police", "ingest", str(export), "--json", env=police_env, timeout_s=200 + NOTIFICATIONS / 5)
        assert ingest.returncode == 0, ingest
        settle(ledger_url, NOTIFICATIONS, 60 + NOTIFICATIONS / 50, gates)
        took = time.monotonic() - began
        assert ingest.json()["counts"] == {"accepted": NOTIFICATIONS}
        assert_each_once(mash, ledger_url, NOTIFICATIONS)
        shares = decided_by(gates)
        for gate in gates:
            assert gate.stop() == 0
    assert all(shares), f"every replica decided some: {shares}"
    assert sum(shares) >= NOTIFICATIONS
    print(
        f"three replicas: {NOTIFICATIONS} notifications ingested and delivered in {took:.1f} s "
        f"({NOTIFICATIONS / took:.0f}/s); decided per replica {shares}"
    )


# ------------------------------------------------------------------------------------ failover


def test_killing_a_gate_replica_and_a_leader_broker_mid_batch_loses_and_duplicates_nothing(
    cluster: KafkaCluster, ledger_url: str, tmp_path: Path
) -> None:
    count = FAILOVER_NOTIFICATIONS
    export = tmp_path / "export.csv"
    write_export(export, count, seed=11)
    gate_env = sasl_env(cluster, GATE_USER, GATE_PASSWORD, tmp_path)
    police_env = sasl_env(cluster, POLICE_USER, POLICE_PASSWORD, tmp_path) | {"MASH_RECEIPT_TIMEOUT_S": "150"}
    with mash_session(tmp_path, MASH_DATABASE_URL=ledger_url) as mash:
        gates = start_gates(mash, gate_env, REPLICAS)
        assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
        wait_for("three members in the gate's group", lambda: group_members(cluster, GATE_GROUP) == REPLICAS, 60)
        samples = Samples(ledger_url, time.monotonic(), [])
        ingest = mash.start("police", "ingest", str(export), "--json", env=police_env)
        samples.until("a quarter decided", lambda n: n >= count // 4, 120, gates)
        gates[1].kill()  # SIGKILL to the process group: no clean-up, its partitions held until its session ends
        gate_killed = samples.points[-1][0]
        survivors = [gates[0], gates[2]]
        samples.until("half decided", lambda n: n >= count // 2, 120, survivors)
        leader = partition_leader(cluster, "police.notification.v1", 0)
        cluster.kill(leader)  # the leader of a partition the police force is writing and the gates reading
        broker_killed = samples.points[-1][0]
        samples.until("all decided", lambda n: n >= count, 150, survivors)
        finished = samples.points[-1][0]
        settle(ledger_url, count, 90, survivors)
        new_leader = partition_leader(cluster, "police.notification.v1", 0)
        result = ingest.wait(200)
        assert result.returncode == 0, result
        assert result.json()["counts"] == {"accepted": count}
        assert_each_once(mash, ledger_url, count)
        restarted_in = cluster.restart(leader)
        for gate in survivors:
            assert gate.stop() == 0
    assert new_leader not in (leader, -1)
    gate_pause = samples.longest_stall(gate_killed, broker_killed)
    broker_pause = samples.longest_stall(broker_killed, finished)
    print(
        f"failover with {count} notifications: gate replica SIGKILLed at {gate_killed:.1f} s, longest pause "
        f"{gate_pause:.1f} s; leader broker {leader} killed at {broker_killed:.1f} s, longest pause "
        f"{broker_pause:.1f} s, new leader {new_leader}; all decided at {finished:.1f} s; broker back in "
        f"{restarted_in:.1f} s; 0 lost, 0 duplicated"
    )
