"""What the product's tests on the Apache Kafka cluster share: `MASH_KAFKA_*` settings per principal, the
test PostgreSQL, the cluster prepared with the product's ACLs, running gate replicas and waiting on them.

The fixtures here (``ledger_url``, ``prepared``, ``cluster``) are registered for the whole directory by
tests/integration/conftest.py, so every module on the cluster (test_kafka_product.py, test_kafka_rolling.py,
test_kafka_withdrawal.py) shares the one session's ``prepared`` cluster: ACLs applied once, by `mash kafka
acls --apply`. Figures measured with them are in docs/kafka.md.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from services.kafka_cluster import KafkaCluster
from sqlalchemy.engine import make_url

from mash_broker.agencies.police.ingest import read_export, sign_rows
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import GATE_GROUP, inbox_group
from mash_broker.app.kafka_security import KafkaSecurity
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.messages import encode, headers_for
from mash_broker.core.settings import Settings

from .conftest import GATE_USER, POLICE_USER, SCHOOL_USER
from .helpers import Mash, Proc, wait_for
from .synthetic_export import DEMO_SCHOOLS

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


def plain_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def pg(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def main() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(plain_url(url), timeout=10)
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
        conn = await asyncpg.connect(plain_url(postgres_url), timeout=10)
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
        sasl, tls = [
            mash.run("kafka", "acls", "--apply", "--json", *_principal_options(m), env=admin)
            for m in (SASL_PRINCIPALS, TLS_PRINCIPALS)
        ]
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


def police_records(mash: Mash, export: Path) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """What `mash police ingest` sends for each row of ``export``: (key, value, headers), the envelope signed
    with its force's key from ``mash``'s key store. For tests that pace or place the sends themselves."""
    rows, rejected = read_export(export, now=datetime.now(UTC), tz=ZoneInfo("Europe/London"))
    assert not rejected, rejected
    return [
        (
            str(r.envelope.correlation_id).encode(),
            encode(r.envelope).encode(),
            [(k, v.encode()) for k, v in headers_for(r.envelope).items()],
        )
        for r in sign_rows(rows, KeyStore(Settings(data_dir=mash.data_dir).keys_dir))
    ]


def start_gates(mash: Mash, env: Mapping[str, str], count: int = 1) -> list[Proc]:
    """``count`` `mash serve` replicas on one ledger and one consumer group: the first alone (it makes the
    gate's key, the ledger's tables and the topics), then the others at once."""
    first = mash.start("serve", ready=SERVE_READY, env=env, timeout_s=SERVE_TIMEOUT_S)
    others = [mash.start("serve", env=env) for _ in range(count - 1)]
    for gate in others:
        gate.wait_for_stderr(SERVE_READY, SERVE_TIMEOUT_S)
    return [first, *others]


def undelivered(url: str) -> int:
    return pg_count(url, "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL")


def settle(url: str, deliveries: int, timeout_s: float, gates: list[Proc]) -> None:
    """Wait until the ledger has ``deliveries`` deliveries, every one received by its inbox; fail at once,
    with its log, if every gate has exited."""

    def done() -> bool:
        if not any(g.running() for g in gates):
            raise AssertionError(f"every gate exited:\n{gates[0].stderr()[-3000:]}")
        return pg_count(url, "SELECT count(*) FROM deliveries") >= deliveries and undelivered(url) == 0

    wait_for(f"{deliveries} deliveries, all received", done, timeout_s, interval_s=0.25)


def read_group(kwargs: dict[str, Any], topic: str, group: str, until: Any, within: float = 60) -> list[Any]:
    """Read ``topic`` from the beginning in consumer group ``group`` until ``until(records)`` (or ``within`` s)."""

    async def main() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic, **kwargs, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
        )
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


REPLICAS = 3


def decided_by(gates: list[Proc]) -> list[int]:
    """How many ``message.decided`` lines each replica logged."""
    return [g.stderr().count('"event": "message.decided"') for g in gates]


def group_members(cluster: KafkaCluster, group: str) -> int:
    async def main() -> int:
        admin = AIOKafkaAdminClient(**cluster.sasl_kwargs(), request_timeout_ms=20_000)
        await admin.start()
        try:
            [described] = await admin.describe_consumer_groups([group])
            return len(described.groups[0][5])  # (error, group, state, protocol_type, protocol, members, ...)
        finally:
            await admin.close()

    return asyncio.run(main())


def assert_each_once(mash: Mash, url: str, count: int) -> None:
    """``count`` messages, one delivery each, each in exactly one school inbox once."""
    assert pg_count(url, "SELECT count(*) FROM messages") == count
    assert pg_count(url, "SELECT count(*) FROM deliveries") == count
    assert pg_count(url, "SELECT count(DISTINCT message_id) FROM deliveries") == count
    assert undelivered(url) == 0
    twice = pg(url, "SELECT message_id, recipient FROM deliveries GROUP BY message_id, recipient HAVING count(*) > 1")
    assert not twice, twice[:5]
    inboxes = mash.run_all(*(("school", "inbox", urn, "--json") for urn in DEMO_SCHOOLS), timeout_s=120)
    ids: list[str] = []
    for inbox in inboxes:
        assert inbox.returncode == 0, inbox
        ids += [n["message_id"] for n in inbox.json()["notifications"]]
    duplicates = [m for m, n in Counter(ids).items() if n > 1]
    assert not duplicates, duplicates[:5]
    assert len(ids) == count


@dataclass
class Samples:
    """(seconds, messages decided) taken every quarter second from the ledger."""

    url: str
    began: float
    points: list[tuple[float, int]]

    def take(self) -> int:
        decided = pg_count(self.url, "SELECT count(*) FROM messages")
        self.points.append((time.monotonic() - self.began, decided))
        return decided

    def until(self, what: str, done: Any, timeout_s: float, gates: list[Proc]) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self.take()):
            assert any(g.running() for g in gates), "every gate exited"
            assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}: {self.points[-1]}"
            time.sleep(0.25)

    def longest_stall(self, since: float, until: float) -> float:
        """The longest time between two increases of the decided count in [since, until]."""
        rises = [t for (t, n), (_, before) in zip(self.points[1:], self.points, strict=False) if n > before]
        edges = [since, *(t for t in rises if since < t < until), until]
        return max(b - a for a, b in pairwise(edges))


def partition_leader(cluster: KafkaCluster, topic: str, partition: int) -> int:
    async def main() -> int:
        admin = AIOKafkaAdminClient(**cluster.sasl_kwargs(), request_timeout_ms=10_000)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            return int(next(p["leader"] for p in described["partitions"] if p["partition"] == partition))
        finally:
            await admin.close()

    return asyncio.run(main())
