"""A real Apache Kafka 4.x cluster (three KRaft nodes, SASL_SSL SCRAM-SHA-512, mutual TLS, ACLs): what the
product relies on Kafka for, checked against Kafka itself rather than the embedded tansu broker.

The cluster is started once for the session by ``services.kafka_cluster`` (jars from Maven Central through
deploy/kafka/fetch.sh, cached). Without Java or Maven the tests skip with what is missing (fail under CI=true).
Every wait is bounded; docs/kafka.md has the figures measured on a two-core machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from services.kafka_cluster import KafkaCluster

# The session's cluster is tests/integration/conftest.py's ``kafka_cluster``, shared with test_kafka_product.py.
from .conftest import ALICE, ALICE_PASSWORD, MTLS_CLIENT  # SCRAM user made at format time; CN=app-mtls

RECORDS = 1_000
POLICE, POLICE_PASSWORD = "police-adapter", uuid.uuid4().hex  # SCRAM user created later, through the admin API
# Topics of their own (not the product's), so this module and test_kafka_product.py run in either order.
POLICE_TOPIC, EDUCATION_TOPIC = "test.acl.police.v1", "test.acl.education.v1"
SASL_TOPIC, MTLS_TOPIC, FAILOVER_TOPIC = "test.sasl.roundtrip.v1", "test.mtls.roundtrip.v1", "test.failover.v1"

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def secured(kafka_cluster: KafkaCluster) -> KafkaCluster:
    """The cluster with the tests' users and ACLs, made in parallel (each is one JVM run of a Kafka tool)."""

    def police() -> None:  # a user made after start-up, through the admin API, granted one topic only
        kafka_cluster.add_scram_user(POLICE, POLICE_PASSWORD)
        kafka_cluster.create_acls(f"User:{POLICE}", topics=[POLICE_TOPIC], operations=["Read", "Write"])

    jobs = [
        lambda: kafka_cluster.create_acls(
            f"User:{ALICE}",
            topics=[SASL_TOPIC, FAILOVER_TOPIC],
            groups=["test.sasl."],
            prefixed=True,
            producer=True,
            consumer=True,
        ),
        lambda: kafka_cluster.create_acls(
            f"User:{MTLS_CLIENT}",
            topics=[MTLS_TOPIC],
            groups=["test.mtls."],
            prefixed=True,
            producer=True,
            consumer=True,
        ),
        police,
    ]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return kafka_cluster


@pytest.fixture
async def admin(secured: KafkaCluster) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**secured.sasl_kwargs(), request_timeout_ms=20_000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create_topic(admin: AIOKafkaAdminClient, name: str, partitions: int = 3) -> None:
    response = await admin.create_topics([NewTopic(name, partitions, 3)])
    errors = [e for _, e, *_ in response.topic_errors if e not in (0, 36)]  # 36: already exists
    assert not errors, response


async def describe(admin: AIOKafkaAdminClient, topic: str, within: float = 20) -> dict[str, Any]:
    """The topic's metadata. aiokafka's admin asks a random known node, which may be one a test killed: retry."""
    deadline = time.monotonic() + within
    while True:
        try:
            [described] = await admin.describe_topics([topic])
            result: dict[str, Any] = described
            return result
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_for_isr(admin: AIOKafkaAdminClient, topic: str, size: int, within: float = 60) -> list[dict[str, Any]]:
    """Poll until every partition of ``topic`` has a leader and ``size`` in-sync replicas; returns them."""
    deadline = time.monotonic() + within
    while True:
        described = await describe(admin, topic)
        partitions: list[dict[str, Any]] = described["partitions"]
        if (
            described["error_code"] == 0
            and partitions
            and all(p["leader"] >= 0 and len(p["isr"]) == size for p in partitions)
        ):
            return partitions
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: ISR never reached {size} in {within} s: {described}")
        await asyncio.sleep(0.25)


async def produce(kwargs: dict[str, Any], topic: str, count: int, prefix: str) -> list[str]:
    """Send ``count`` records with an idempotent acks=all producer; returns the values, all acknowledged."""
    producer = AIOKafkaProducer(**kwargs, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        values = [f"{prefix}-{i:05d}" for i in range(count)]
        futures = [await producer.send(topic, v.encode(), key=str(i % 17).encode()) for i, v in enumerate(values)]
        async with asyncio.timeout(60):
            await asyncio.gather(*futures)
        return values
    finally:
        await producer.stop()


async def consume_group(kwargs: dict[str, Any], topic: str, expected: int, group: str) -> list[str]:
    """Read ``topic`` from the beginning in consumer group ``group`` until ``expected`` records (or 60 s), and
    a little longer, so a duplicate would show."""
    consumer = AIOKafkaConsumer(
        topic,
        **kwargs,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        settle_until: float | None = None
        while time.monotonic() < deadline and (settle_until is None or time.monotonic() < settle_until):
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                seen.extend(r.value.decode() for r in records)
            if len(seen) >= expected and settle_until is None:
                settle_until = time.monotonic() + 1.0
        await consumer.commit()
        return seen
    finally:
        await consumer.stop()


async def read_all(kwargs: dict[str, Any], topic: str, admin: AIOKafkaAdminClient) -> list[str]:
    """Every record in ``topic``, read by partition assignment (no group) up to the current end offsets."""
    described = await describe(admin, topic)
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        seen: list[str] = []
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batches.values():
                    seen.extend(r.value.decode() for r in records)
        return seen
    finally:
        await consumer.stop()


def assert_exactly_once(sent: list[str], seen: list[str]) -> None:
    duplicates = [v for v, n in Counter(seen).items() if n > 1]
    missing = set(sent) - set(seen)
    assert not missing, f"{len(missing)} of {len(sent)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    assert not duplicates, f"{len(duplicates)} records delivered twice, e.g. {duplicates[:5]}"
    assert set(seen) == set(sent), f"unexpected records: {sorted(set(seen) - set(sent))[:5]}"


# ------------------------------------------------------------------------------------------------ tests


async def assert_replicated(admin: AIOKafkaAdminClient, topic: str) -> None:
    """``topic`` has three replicas of every partition, all in sync, and needs two in sync to accept acks=all."""
    partitions = await wait_for_isr(admin, topic, 3)
    assert len(partitions) == 3
    for partition in partitions:
        assert sorted(partition["replicas"]) == [0, 1, 2], partition
        assert sorted(partition["isr"]) == [0, 1, 2], partition
    [topic_config] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})]
    )
    entries = {e[0]: e[1] for e in topic_config.resources[0][4]}
    assert entries == {"min.insync.replicas": "2"}


async def test_cluster_defaults_are_production_ones(admin: AIOKafkaAdminClient) -> None:
    cluster = await admin.describe_cluster()
    assert sorted(b["node_id"] for b in cluster["brokers"]) == [0, 1, 2]
    for node in ("0", "1", "2"):
        [broker_config] = await admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.BROKER,
                    node,
                    {
                        "default.replication.factor": None,
                        "min.insync.replicas": None,
                        "auto.create.topics.enable": None,
                        "unclean.leader.election.enable": None,
                        "authorizer.class.name": None,
                    },
                )
            ]
        )
        entries = {e[0]: e[1] for e in broker_config.resources[0][4]}
        assert entries == {
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        }  # allow.everyone.if.no.acl.found is the authorizer's own setting, which Kafka reports as sensitive
        # (no value): test_user_granted_one_topic_is_refused_another shows the brokers deny by default.


async def test_sasl_scram_sha512_thousand_records_none_lost_none_duplicated(
    secured: KafkaCluster, admin: AIOKafkaAdminClient
) -> None:
    await create_topic(admin, SASL_TOPIC)
    await assert_replicated(admin, SASL_TOPIC)
    kwargs = secured.sasl_kwargs(ALICE, ALICE_PASSWORD)
    sent = await produce(kwargs, SASL_TOPIC, RECORDS, f"sasl-{uuid.uuid4().hex[:6]}")
    seen = await consume_group(kwargs, SASL_TOPIC, RECORDS, f"test.sasl.{uuid.uuid4().hex[:6]}")
    assert_exactly_once(sent, seen)
    assert len(seen) == RECORDS


async def test_mutual_tls_thousand_records_none_lost_none_duplicated(
    secured: KafkaCluster, admin: AIOKafkaAdminClient
) -> None:
    await create_topic(admin, MTLS_TOPIC)
    await assert_replicated(admin, MTLS_TOPIC)
    kwargs = secured.mtls_kwargs(MTLS_CLIENT)
    sent = await produce(kwargs, MTLS_TOPIC, RECORDS, f"mtls-{uuid.uuid4().hex[:6]}")
    seen = await consume_group(kwargs, MTLS_TOPIC, RECORDS, f"test.mtls.{uuid.uuid4().hex[:6]}")
    assert_exactly_once(sent, seen)
    assert len(seen) == RECORDS


async def test_user_granted_one_topic_is_refused_another(secured: KafkaCluster, admin: AIOKafkaAdminClient) -> None:
    for topic in (POLICE_TOPIC, EDUCATION_TOPIC):
        await create_topic(admin, topic, partitions=1)
        await wait_for_isr(admin, topic, 3)
    kwargs = secured.sasl_kwargs(POLICE, POLICE_PASSWORD)
    # Allowed: write and read its own topic.
    sent = await produce(kwargs, POLICE_TOPIC, 10, "police")
    assert sorted(await read_all(kwargs, POLICE_TOPIC, admin)) == sent
    # Refused: writing the education topic...
    producer = AIOKafkaProducer(**kwargs, enable_idempotence=True, acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            async with asyncio.timeout(30):
                await producer.send_and_wait(EDUCATION_TOPIC, b"not for the police adapter")
    finally:
        await producer.stop()
    # ...reading it (a subscription: aiokafka raises the broker's refusal from getmany)...
    consumer = AIOKafkaConsumer(
        EDUCATION_TOPIC, **kwargs, group_id="police.readers", enable_auto_commit=False, auto_offset_reset="earliest"
    )

    async def read_forever() -> None:
        await consumer.start()
        while True:
            await consumer.getmany(timeout_ms=500)

    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(read_forever(), 30)
    finally:
        await consumer.stop()
    # ...and even seeing it: the metadata shown to the police adapter lists its own topic only.
    consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False)
    await consumer.start()
    try:
        visible = await consumer.topics()
    finally:
        await consumer.stop()
    assert POLICE_TOPIC in visible
    assert EDUCATION_TOPIC not in visible
    # The refused write left nothing behind.
    assert await read_all(secured.sasl_kwargs(), EDUCATION_TOPIC, admin) == []
    # The brokers say why: no ACL matched, and with allow.everyone.if.no.acl.found=false that is a denial.
    denials = secured.log_lines(f"Principal = User:{POLICE} is Denied")
    assert any(f"Topic:LITERAL:{EDUCATION_TOPIC}" in line and "DefaultDeny" in line for line in denials), denials


async def test_mutual_tls_principal_is_the_certificate_common_name(
    secured: KafkaCluster, admin: AIOKafkaAdminClient
) -> None:
    await create_topic(admin, POLICE_TOPIC, partitions=1)
    producer = AIOKafkaProducer(**secured.mtls_kwargs(MTLS_CLIENT), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait(POLICE_TOPIC, b"not for app-mtls"), 30)
    finally:
        await producer.stop()
    denials = secured.log_lines(f"Principal = User:{MTLS_CLIENT} is Denied")
    assert any(f"Topic:LITERAL:{POLICE_TOPIC}" in line for line in denials), denials


async def test_wrong_password_is_refused(secured: KafkaCluster, caplog: pytest.LogCaptureFixture) -> None:
    producer = AIOKafkaProducer(**secured.sasl_kwargs(ALICE, "not-" + ALICE_PASSWORD), request_timeout_ms=10_000)
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 30)  # aiokafka: "Unable to bootstrap", the reason is logged
    await producer.stop()
    refusals = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailed" in r.getMessage()]
    assert len(refusals) == 3, caplog.text  # every node refused the credentials
    assert all("invalid credentials with SASL mechanism SCRAM-SHA-512" in m for m in refusals), refusals


def test_tls_client_without_certificate_is_refused(secured: KafkaCluster) -> None:
    host, port = secured.bootstrap_mtls.split(",")[0].split(":")
    context = secured.ssl_context()  # trusts the CA, presents no certificate

    def talk() -> bytes:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            # TLS 1.3: the client's side of the handshake completes; the server's refusal arrives as an alert.
            tls.sendall(b"\x00\x00\x00\x00")
            return tls.recv(1)

    with pytest.raises(ssl.SSLError) as refused:
        talk()
    # Java's TLS answers with a bad_certificate alert (TLS 1.3 would allow certificate_required).
    assert isinstance(refused.value, ssl.SSLError), refused.value
    assert "BAD_CERTIFICATE" in str(refused.value).upper() or "CERTIFICATE_REQUIRED" in str(refused.value).upper()


async def test_aiokafka_client_without_certificate_cannot_connect(
    secured: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=secured.bootstrap_mtls,
        security_protocol="SSL",
        ssl_context=secured.ssl_context(),
        request_timeout_ms=10_000,
    )
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()
    closed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Unable connect to")]
    assert len(closed) == 3, caplog.text  # every node closed the connection


async def test_killing_the_leader_while_producing_loses_no_acknowledged_record(
    secured: KafkaCluster, admin: AIOKafkaAdminClient
) -> None:
    await create_topic(admin, FAILOVER_TOPIC, partitions=1)
    [partition] = await wait_for_isr(admin, FAILOVER_TOPIC, 3)
    leader = partition["leader"]
    kwargs = secured.sasl_kwargs(ALICE, ALICE_PASSWORD)
    producer = AIOKafkaProducer(
        **kwargs, enable_idempotence=True, acks="all", linger_ms=2, request_timeout_ms=15_000, retry_backoff_ms=200
    )
    await producer.start()
    acknowledged: list[str] = []
    failed: list[str] = []
    stop = asyncio.Event()
    window = asyncio.Semaphore(50)

    def settle(value: str, future: asyncio.Future[Any]) -> None:
        window.release()
        (failed if future.cancelled() or future.exception() else acknowledged).append(value)

    async def keep_producing() -> int:
        i = 0
        while not stop.is_set():
            await window.acquire()
            value = f"failover-{i:06d}"
            future = await producer.send(FAILOVER_TOPIC, value.encode())
            future.add_done_callback(lambda f, v=value: settle(v, f))
            i += 1
            await asyncio.sleep(0.002)
        return i

    async def until(count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(acknowledged)} of {count} acknowledged in {within} s"
            await asyncio.sleep(0.05)

    task = asyncio.create_task(keep_producing())
    killed_at = 0.0
    try:
        await until(300, 30)
        secured.kill(leader)
        killed_at = time.monotonic()
        at_kill = len(acknowledged)
        await until(at_kill + 300, 60)  # a new leader took over and acks=all still holds with two in sync
        failover_seconds = time.monotonic() - killed_at
    finally:
        stop.set()
        sent = await asyncio.wait_for(task, 30)
        async with asyncio.timeout(60):
            await producer.flush()
        await producer.stop()
    assert len(acknowledged) + len(failed) == sent

    [after] = (await describe(admin, FAILOVER_TOPIC))["partitions"]
    assert after["leader"] not in (leader, -1), after
    assert leader not in after["isr"], after

    seen = await read_all(kwargs, FAILOVER_TOPIC, admin)
    lost = set(acknowledged) - set(seen)
    assert not lost, f"{len(lost)} acknowledged records lost after the leader was killed: {sorted(lost)[:5]}"
    duplicates = [v for v, n in Counter(seen).items() if n > 1]
    assert not duplicates, f"idempotent producer wrote duplicates across the failover: {duplicates[:5]}"

    restart_seconds = secured.restart(leader)
    partitions = await wait_for_isr(admin, FAILOVER_TOPIC, 3, within=60)
    assert leader in partitions[0]["isr"]
    print(
        f"failover: {len(acknowledged)} acknowledged, {len(failed)} failed, new leader after "
        f"{failover_seconds:.1f} s, node {leader} back in {restart_seconds:.1f} s; RSS MiB {secured.rss_mb()}"
    )
