"""The product on a real Apache Kafka cluster: `mash serve`, `mash school load` and `mash police ingest` as
processes, over SASL_SSL (SCRAM-SHA-512) and mutual TLS, each principal held to the ACLs `mash kafka acls
--apply` derived from the agency registry, the ledger on the test PostgreSQL (a fresh database per test).

The cluster is the session's (tests/integration/conftest.py), shared with test_kafka_cluster.py, so the
product's topics may already exist (that module uses ``police.notification.v1`` and
``education.delivery.v1``): the session fixture grows them to the product's partition count, and before each
test the gate's and the inboxes' consumer groups are moved to the end of their topics, so a test's fresh
ledger never sees an earlier test's messages. Figures measured here are in docs/kafka.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.errors import TopicAuthorizationFailedError
from services.kafka_cluster import KafkaCluster
from sqlalchemy.engine import make_url

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import GATE_GROUP, inbox_group
from mash_broker.app.kafka_acl_wire import create_acls, describe_acls
from mash_broker.app.kafka_acls import AclBinding, agency_acls, derive_acls, gate_acls, parse_principals
from mash_broker.app.kafka_security import KafkaSecurity

from .conftest import GATE_PASSWORD, GATE_USER, POLICE_PASSWORD, POLICE_USER, SCHOOL_PASSWORD, SCHOOL_USER
from .helpers import DEMO, SCHOOL, Mash, Proc, mash_session, wait_for
from .synthetic_export import DEMO_SCHOOLS, write_export

pytestmark = pytest.mark.kafka

PARTITIONS = 6  # MASH_KAFKA_PARTITIONS' default
GATE_TLS, POLICE_TLS, SCHOOL_TLS = "mash-gate-tls", "police-tls", "school-tls"  # client certificate CNs
SASL_PRINCIPALS = {"gate": GATE_USER, "police": POLICE_USER, "education": SCHOOL_USER}
TLS_PRINCIPALS = {"gate": GATE_TLS, "police": POLICE_TLS, "education": SCHOOL_TLS}
SERVE_READY = "mash serve: ready"
SERVE_TIMEOUT_S = 120.0  # three JVMs and a CLI start on two cores


# ------------------------------------------------------------------------------------ settings as env


def _password_file(directory: Path, user: str, password: str) -> Path:
    path = directory / f"{user}.password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return path


def sasl_env(cluster: KafkaCluster, user: str, password: str, directory: Path) -> dict[str, str]:
    """MASH_KAFKA_* for ``user`` over SASL_SSL (SCRAM-SHA-512), the password in a file."""
    return {
        "MASH_KAFKA_BOOTSTRAP": cluster.bootstrap_sasl,
        "MASH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "MASH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MASH_KAFKA_USERNAME": user,
        "MASH_KAFKA_PASSWORD_FILE": str(_password_file(directory, user, password)),
        "MASH_KAFKA_CA_FILE": str(cluster.ca_file),
    }


def tls_env(cluster: KafkaCluster, client: str | None) -> dict[str, str]:
    """MASH_KAFKA_* for mutual TLS with ``client``'s certificate (None: TLS without one)."""
    env = {
        "MASH_KAFKA_BOOTSTRAP": cluster.bootstrap_mtls,
        "MASH_KAFKA_SECURITY_PROTOCOL": "SSL",
        "MASH_KAFKA_CA_FILE": str(cluster.ca_file),
    }
    if client is not None:
        cert = cluster.client_cert(client)
        env |= {"MASH_KAFKA_CERT_FILE": str(cert.cert_file), "MASH_KAFKA_KEY_FILE": str(cert.key_file)}
    return env


def admin_security(cluster: KafkaCluster) -> KafkaSecurity:
    return KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "admin", cluster.admin_password, cluster.ssl_context())


# ------------------------------------------------------------------------------------ PostgreSQL


def _plain(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def pg(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def main() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_plain(url), timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(main())


def pg_count(url: str, query: str, *args: Any) -> int:
    return int(pg(url, query, *args)[0][0] or 0)


@pytest.fixture
def ledger_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test's ledger (MASH_DATABASE_URL), dropped after it."""
    name = f"kafka_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(_plain(postgres_url), timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ------------------------------------------------------------------------------------ the cluster, prepared


async def _grow_topics(cluster: KafkaCluster) -> None:
    """Topics another module made with fewer partitions get the product's count (Kafka can add, not remove)."""
    admin = AIOKafkaAdminClient(**cluster.sasl_kwargs(), request_timeout_ms=20_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in REGISTRY.all_topics if t in existing]
        grow = {}
        for described in await admin.describe_topics(wanted):
            if len(described["partitions"]) < PARTITIONS:
                grow[described["topic"]] = NewPartitions(PARTITIONS)
        if grow:
            await admin.create_partitions(grow)
    finally:
        await admin.close()


async def _fast_forward(cluster: KafkaCluster) -> None:
    """Commit the end of every topic for the gate's and the inboxes' groups: a new ledger starts from now."""
    groups = {GATE_GROUP: list(REGISTRY.inbound_topics)}
    groups |= {inbox_group(sub.agency): [sub.topic] for sub in REGISTRY.inboxes}
    admin = AIOKafkaAdminClient(**cluster.sasl_kwargs(), request_timeout_ms=20_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        partitions = {
            d["topic"]: [p["partition"] for p in d["partitions"]]
            for d in await admin.describe_topics([t for t in REGISTRY.all_topics if t in existing])
        }
    finally:
        await admin.close()
    for group, names in groups.items():
        tps = [TopicPartition(t, p) for t in names for p in partitions.get(t, [])]
        if not tps:
            continue
        deadline = time.monotonic() + 60  # a killed member's session may still hold the group for a while
        while True:
            consumer = AIOKafkaConsumer(**cluster.sasl_kwargs(), group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                await consumer.commit(dict(ends))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
            finally:
                await consumer.stop()


@dataclass(frozen=True)
class Prepared:
    cluster: KafkaCluster
    secrets: Path  # password files
    acls_sasl: Any  # the `mash kafka acls --apply` results
    acls_tls: Any


def _principal_options(mapping: Mapping[str, str]) -> list[str]:
    return [arg for agency, user in mapping.items() for arg in ("--principal", f"{agency}=User:{user}")]


@pytest.fixture(scope="session")
def prepared(kafka_cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """The cluster with the product's ACLs applied by `mash kafka acls --apply` as the admin user (SCRAM and
    certificate principals), and topics other tests made grown to the product's partition count."""
    base = tmp_path_factory.mktemp("kafka-acls")
    asyncio.run(_grow_topics(kafka_cluster))
    mash = Mash(base / "data", base / "logs")
    admin = sasl_env(kafka_cluster, "admin", kafka_cluster.admin_password, base)
    try:
        sasl, tls = [mash.run("kafka", "acls", "--apply", "--json", *_principal_options(m), env=admin)
                     for m in (SASL_PRINCIPALS, TLS_PRINCIPALS)]
        yield Prepared(kafka_cluster, base, sasl, tls)
    finally:
        mash.close()


@pytest.fixture
def cluster(prepared: Prepared) -> KafkaCluster:
    """The prepared cluster, every node running, the product's groups at the end of their topics."""
    for node in prepared.cluster.nodes:
        if not node.running:
            prepared.cluster.restart(node.node_id)
    asyncio.run(_fast_forward(prepared.cluster))
    return prepared.cluster


# ------------------------------------------------------------------------------------ the ACLs themselves


def test_acls_are_derived_from_the_registry() -> None:
    principals = parse_principals([f"{k}=User:{v}" for k, v in SASL_PRINCIPALS.items()], None,
                                  [a.name for a in REGISTRY.agencies])
    acls = derive_acls(REGISTRY, principals)
    assert len(acls) == len(set(acls))

    def allowed(user: str, op: str) -> set[str]:
        return {b.name for b in acls if b.principal == f"User:{user}" and b.operation == op
                and b.resource_type == "Topic"}

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
    assert allowed(GATE_USER, "WRITE") == set(REGISTRY.outbound_topics)
    groups = {(b.principal, b.name, b.pattern) for b in acls if b.resource_type == "Group"}
    assert (f"User:{POLICE_USER}", "police.", "PREFIXED") in groups
    assert (f"User:{GATE_USER}", GATE_GROUP, "LITERAL") in groups
    # Every agency the registry knows gets its ACLs from the same rule: a new one needs no new code here.
    for agency in REGISTRY.agencies:
        assert agency_acls(REGISTRY, agency.name, "User:x") or not (agency.sender_areas or agency.delivery_topic)
    assert len(gate_acls(REGISTRY, "User:g")) > len(REGISTRY.all_topics)
    # kafka-acls.sh lines for an operator.
    line = AclBinding("User:p", "Group", "police.", "READ", pattern="PREFIXED").command("b:9093", "a.properties")
    assert line == ("kafka-acls.sh --bootstrap-server b:9093 --command-config a.properties --add "
                    "--allow-principal User:p --operation Read --group police. --resource-pattern-type prefixed")


def test_mash_kafka_acls_apply_creates_exactly_the_derived_acls(prepared: Prepared) -> None:
    for result, mapping in ((prepared.acls_sasl, SASL_PRINCIPALS), (prepared.acls_tls, TLS_PRINCIPALS)):
        assert result.returncode == 0, result
        printed = {AclBinding(**b) for b in result.json()}
        assert "ACLs created" in result.stderr, result
        expected = set(derive_acls(REGISTRY, {k: f"User:{v}" for k, v in mapping.items()}))
        assert printed == expected
        for agency, user in mapping.items():
            held = asyncio.run(describe_acls(prepared.cluster.bootstrap_sasl, admin_security(prepared.cluster),
                                             f"User:{user}"))
            assert set(held) == {b for b in expected if b.principal == f"User:{user}"}, agency
    # Creating them again is harmless (the wire module on its own).
    again = derive_acls(REGISTRY, {"police": f"User:{POLICE_USER}"})
    assert asyncio.run(create_acls(prepared.cluster.bootstrap_sasl, admin_security(prepared.cluster), again)) == 5


# ------------------------------------------------------------------------------------ the overnight path


def start_gates(mash: Mash, env: Mapping[str, str], count: int = 1) -> list[Proc]:
    """``count`` `mash serve` replicas on one ledger and one consumer group, started one after another (the
    first makes the gate's key and the ledger's tables)."""
    return [mash.start("serve", ready=SERVE_READY, env=env, timeout_s=SERVE_TIMEOUT_S) for _ in range(count)]


def undelivered(url: str) -> int:
    return pg_count(url, "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL")


def settle(url: str, deliveries: int, timeout_s: float) -> None:
    """Wait until the ledger has ``deliveries`` deliveries, every one received by its inbox."""
    wait_for(f"{deliveries} deliveries, all received",
             lambda: pg_count(url, "SELECT count(*) FROM deliveries") >= deliveries and undelivered(url) == 0,
             timeout_s, interval_s=0.25)


def read_group(kwargs: dict[str, Any], topic: str, group: str, until: Any, within: float = 60) -> list[Any]:
    """Read ``topic`` from the beginning in consumer group ``group`` until ``until(records)`` (or ``within`` s)."""

    async def main() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, **kwargs, group_id=group, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        seen: list[Any] = []
        try:
            deadline = time.monotonic() + within
            while not until(seen) and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.extend(records)
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(main())


@pytest.mark.parametrize("wire", ["sasl_ssl", "mutual_tls"])
def test_overnight_encompass_export_end_to_end(
        wire: str, cluster: KafkaCluster, ledger_url: str, tmp_path: Path) -> None:
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
        settle(ledger_url, 9, 60)
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
                [ConfigResource(ConfigResourceType.TOPIC, "education.inbound.v1", {"min.insync.replicas": None})])
            return topic, configs
        finally:
            await admin.close()

    topic, configs = asyncio.run(described())
    assert len(topic["partitions"]) == PARTITIONS
    assert all(len(p["replicas"]) == 3 for p in topic["partitions"])
    assert {e[0]: e[1] for e in configs.resources[0][4]} == {"min.insync.replicas": "2"}
    print(f"overnight over {wire}: gate ready in {ready_s:.1f} s, export to inbox in {took:.1f} s")
