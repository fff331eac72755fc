"""A rolling restart of all three Apache Kafka brokers under traffic (issue 12), as an operator upgrades a
cluster: stop broker 0 cleanly (SIGTERM: Kafka's controlled shutdown moves its leaderships first), start it
again, wait until every partition has all its replicas in sync, then broker 1, then broker 2. Three `mash serve`
replicas on one PostgreSQL ledger decide and deliver what a police force's system sends meanwhile: signed
notifications, as `mash police ingest` sends them, over SASL_SSL as police's own principal, at a steady rate.
From the moment each broker is stopped, ``PER_BROKER`` more are sent, so every broker's stop and restart
happens under traffic and the run stays a few hundred notifications long however slow the machine is.

Afterwards: every notification Kafka acknowledged is decided once, delivered once and in exactly one school
inbox once, and every gate replica is still running. The pause each broker's restart caused is measured per
notification, from the ledger's own times: the longest any notification sent while that broker was down or
catching up waited to be decided, and to be delivered (received by its school's inbox). It is printed, and
docs/kafka.md has the figures; nothing passes or fails on a time.

The cluster is the session's: whatever happens, every node is running and in sync when this test ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from services.kafka_cluster import KafkaCluster

from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.app.bootstrap import GATE_GROUP

from .conftest import GATE_PASSWORD, GATE_USER, POLICE_PASSWORD, POLICE_USER
from .helpers import DEMO, mash_session, wait_for
from .kafka_support import (
    REPLICAS,
    assert_each_once,
    group_members,
    pg,
    pg_count,
    police_records,
    sasl_env,
    settle,
    start_gates,
)
from .synthetic_export import write_export

pytestmark = pytest.mark.kafka

RATE = float(os.environ.get("MASH_KAFKA_TEST_ROLLING_RATE", "8"))  # notifications a second
PER_BROKER = int(os.environ.get("MASH_KAFKA_TEST_ROLLING_PER_BROKER", "100"))  # sent from each broker's stop on
WARM_UP = 20  # sent and decided before the first broker is stopped: the traffic is flowing end to end
IN_SYNC_TIMEOUT_S = 120.0
START_TIMEOUT_S = 300.0  # one node's start: 3 s quiet, 103 s once at load average 29


@dataclass
class Traffic:
    """Police's system, in a thread of its own: sends the records it is allowed (``allow``), at most ``rate`` a
    second, each until Kafka acknowledges it (an idempotent, acks=all producer; a send that fails is sent again,
    and the gate drops the copy by its message id)."""

    cluster: KafkaCluster
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]  # (key, value, headers), as ingest sends them
    rate: float
    allowed: int = 0
    acknowledged: int = 0
    retried: int = 0
    sent_at: dict[str, datetime] = field(default_factory=dict)  # message id -> first sent (UTC)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="police-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def allow(self, more: int) -> None:
        self.allowed = min(len(self.records), self.allowed + more)

    def all_sent(self) -> bool:
        if self.error is not None:
            raise AssertionError(f"the traffic failed: {self.error!r}") from self.error
        return self.acknowledged >= self.allowed

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the traffic thread did not stop"
        if self.error is not None:
            raise AssertionError(f"the traffic failed: {self.error!r}") from self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._send())
        except BaseException as exc:  # reported by stop() and all_sent()
            self.error = exc

    async def _send(self) -> None:
        producer = AIOKafkaProducer(
            **self.cluster.sasl_kwargs(POLICE_USER, POLICE_PASSWORD),
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            request_timeout_ms=15_000,
            retry_backoff_ms=200,
        )
        await producer.start()
        next_at = time.monotonic()
        try:
            for key, value, headers in self.records:
                while self.acknowledged >= self.allowed:
                    if self._stop.is_set():
                        return
                    await asyncio.sleep(0.05)
                    next_at = max(next_at, time.monotonic())
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1 / self.rate
                self.sent_at[json.loads(value)["message_id"]] = datetime.now(UTC)
                began = time.monotonic()
                while True:
                    try:
                        await producer.send_and_wait(POLICE_NOTIFICATIONS, value, key=key, headers=headers)
                        break
                    except KafkaError:
                        self.retried += 1
                        if time.monotonic() - began > 120:
                            raise
                        await asyncio.sleep(0.5)
                self.acknowledged += 1
        finally:
            await producer.stop()


@dataclass(frozen=True)
class Step:
    node: int
    stopped_at: datetime
    back_at: datetime  # every partition's replicas in sync again
    stop_s: float  # SIGTERM to exit (controlled shutdown)
    start_s: float  # start to "Kafka Server started"
    in_sync_s: float  # from started to every replica in sync


def heal(cluster: KafkaCluster) -> None:
    """Every node running and every replica in sync: how the session's cluster must be left."""
    for node in cluster.nodes:
        if not node.running:
            cluster.restart(node.node_id, START_TIMEOUT_S)
    cluster.wait_in_sync(IN_SYNC_TIMEOUT_S)


def latencies(url: str, sent_at: dict[str, datetime]) -> dict[str, tuple[datetime, float, float]]:
    """Per message id: (sent at, seconds to its decision, seconds until its school's inbox received it)."""
    rows = pg(
        url,
        "SELECT d.message_id, d.decided_at, max(v.delivered_at) AS delivered_at FROM decisions d "
        "JOIN deliveries v ON v.message_id = d.message_id GROUP BY d.message_id, d.decided_at",
    )
    return {
        r["message_id"]: (
            sent_at[r["message_id"]],
            (r["decided_at"] - sent_at[r["message_id"]]).total_seconds(),
            (r["delivered_at"] - sent_at[r["message_id"]]).total_seconds(),
        )
        for r in rows
    }


def test_rolling_restart_of_every_broker_under_traffic_loses_and_duplicates_nothing(
    cluster: KafkaCluster, ledger_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    write_export(export, WARM_UP + PER_BROKER * len(cluster.nodes), seed=29)
    gate_env = sasl_env(cluster, GATE_USER, GATE_PASSWORD, tmp_path)
    steps: list[Step] = []
    began = time.monotonic()
    try:
        with mash_session(tmp_path, MASH_DATABASE_URL=ledger_url) as mash:
            traffic = Traffic(cluster, police_records(mash, export), RATE)
            gates = start_gates(mash, gate_env, REPLICAS)
            assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
            wait_for("three members in the gate's group", lambda: group_members(cluster, GATE_GROUP) == REPLICAS, 60)
            cluster.wait_in_sync(IN_SYNC_TIMEOUT_S)
            traffic.start()
            try:
                traffic.allow(WARM_UP)
                settle(ledger_url, WARM_UP, 120, gates)  # decided and delivered: the whole path is warm
                for node in range(len(cluster.nodes)):
                    traffic.allow(PER_BROKER)
                    time.sleep(1.0)  # the traffic is flowing when the broker goes
                    stopped_at = datetime.now(UTC)
                    stop_s = cluster.stop_node(node)
                    start_s = cluster.restart(node, START_TIMEOUT_S)
                    in_sync_s = cluster.wait_in_sync(IN_SYNC_TIMEOUT_S)
                    steps.append(Step(node, stopped_at, datetime.now(UTC), stop_s, start_s, in_sync_s))
                    assert all(g.running() for g in gates), "a gate replica exited during the restart"
                wait_for("every notification sent and acknowledged", traffic.all_sent, 180, 0.25)
            finally:
                traffic.stop()
            sent = traffic.acknowledged
            assert sent == len(traffic.records)
            settle(ledger_url, sent, 60 + sent / 5, gates)
            assert pg_count(ledger_url, "SELECT count(*) FROM messages") == sent
            assert_each_once(mash, ledger_url, sent)
            assert all(g.running() for g in gates)
            for gate in gates:
                assert gate.stop() == 0
            waited = latencies(ledger_url, traffic.sent_at)
    finally:
        heal(cluster)

    assert set(waited) == set(traffic.sent_at)
    warm = [w for at, *w in waited.values() if at < steps[0].stopped_at]
    print(
        f"rolling restart under traffic ({RATE:g}/s, {PER_BROKER} from each broker's stop): {sent} notifications "
        f"sent and acknowledged ({traffic.retried} sends retried), each decided and delivered once; "
        f"{time.monotonic() - began:.0f} s in all. Before the restart: decided within "
        f"{max(d for d, _ in warm):.1f} s, delivered within {max(v for _, v in warm):.1f} s"
    )
    for step in steps:
        during = [w for at, *w in waited.values() if step.stopped_at <= at <= step.back_at]
        print(
            f"  broker {step.node}: stopped in {step.stop_s:.1f} s, started in {step.start_s:.1f} s, every replica "
            f"in sync {step.in_sync_s:.1f} s later; {len(during)} notifications sent meanwhile, the longest "
            f"waited {max((d for d, _ in during), default=0):.1f} s to be decided and "
            f"{max((v for _, v in during), default=0):.1f} s to be delivered"
        )
