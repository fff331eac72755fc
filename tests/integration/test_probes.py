"""/healthz, /readyz and /metrics over real sockets: the embedded broker, the stack `mash up` runs, plain HTTP.

Ready means: the ledger answers, Kafka answers a metadata request, and the gate's consumer has joined its
group and been assigned (with two gate replicas on one partition, the second is assigned none: a standby,
still ready, and the body says so). Not ready is a 503 whose JSON names what is not ready.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker

from mash_broker.app.bootstrap import GATE_GROUP
from mash_broker.app.health import Readiness, gate_consumer_state, health_app
from mash_broker.app.kafka import ensure_topics
from mash_broker.app.runtime import Stack, running
from mash_broker.core.settings import Settings

pytestmark = pytest.mark.embedded


async def wait_ready(url: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll ``url`` (a /readyz) until it answers 200; the last body either way."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            answer = await http.get(url)
            if answer.status_code == 200 or time.monotonic() > deadline:
                assert answer.status_code == 200, answer.text
                body: dict[str, Any] = answer.json()
                return body
            await asyncio.sleep(0.2)


def urls(stack: Stack) -> tuple[str, str]:
    assert stack.health is not None
    assert stack.web is not None
    return stack.health.url, stack.web.url


async def test_a_running_stack_is_alive_ready_and_exposes_its_metrics(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, web_port=0, health_port=0)
    async with running(settings, web=True) as stack:
        health, web = urls(stack)
        async with httpx.AsyncClient(timeout=5) as http:
            for base in (health, web):
                alive = await http.get(f"{base}/healthz")
                assert alive.status_code == 200
                assert alive.json() == {"status": "alive"}
        body = await wait_ready(f"{health}/readyz")
        assert body["status"] == "ready"
        assert body["not_ready"] == []
        assert set(body["checks"]) == {"ledger", "kafka", "gate_consumer"}
        assert "assigned" in body["checks"]["gate_consumer"]["detail"]
        on_web = await wait_ready(f"{web}/readyz")  # the pages in this process see the same services
        assert set(on_web["checks"]) == {"ledger", "kafka", "gate_consumer"}

        async with httpx.AsyncClient(timeout=10) as http:
            scraped = await http.get(f"{health}/metrics")
            assert (await http.get(f"{web}/metrics")).status_code == 404  # metrics on the probe port only
        assert scraped.status_code == 200
        text = scraped.text
        for name in (
            "mash_consumer_lag",
            "mash_relay_latency_seconds_bucket",
            "mash_outbox_depth",
            "mash_deliveries_unacknowledged",
            "mash_gate_decisions",
            "mash_clock_breaches",
        ):
            assert f"# TYPE {name.removesuffix('_bucket')}" in text or name in text, name
        assert 'mash_consumer_lag{group="mash-gate"' in text  # the gate's partitions, sampled


async def test_a_second_gate_replica_with_no_partition_left_is_ready_as_a_standby(
    embedded_bootstrap: str, unique_topic: str
) -> None:
    """Two gate replicas in one group on a one-partition topic: one is assigned it, the other none and
    is ready all the same (a standby), saying so; before joining, neither is ready."""
    group = f"gate-{unique_topic}"
    replicas = [KafkaBroker(embedded_bootstrap, logger=None) for _ in range(2)]
    for broker in replicas:

        @broker.subscriber(unique_topic, group_id=group, auto_offset_reset="earliest")
        async def gate(body: bytes) -> None: ...

    assert [gate_consumer_state(b, group).ok for b in replicas] == [False, False]  # not started
    await ensure_topics(embedded_bootstrap, [unique_topic])
    try:
        for broker in replicas:
            await broker.start()

        def settled() -> list[str] | None:
            states = [gate_consumer_state(b, group) for b in replicas]
            return [s.detail for s in states] if all(s.ok for s in states) else None

        details = await eventually(settled, 60)
        assert sorted(details) == sorted(
            [
                f"joined {group}; assigned 1 partitions",
                f"joined {group}; assigned no partitions (more replicas than partitions: a standby)",
            ]
        ), details
    finally:
        for broker in replicas:
            await broker.stop()


async def eventually(check: Callable[[], Any], timeout_s: float) -> Any:
    """``check()`` once it is truthy (a group join and rebalance take a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)
    return found


class DeadLedger:
    async def ledger_answers(self) -> bool:
        raise ConnectionRefusedError


async def test_not_ready_answers_503_naming_what_is_not_ready() -> None:
    broker = KafkaBroker("127.0.0.1:1")  # never started: no consumer, Kafka unreachable

    @broker.subscriber("gate.in.v1", group_id=GATE_GROUP)
    async def gate(body: bytes) -> None: ...

    readiness = Readiness(DeadLedger())  # type: ignore[arg-type]
    readiness.watch(broker, GATE_GROUP)
    assert gate_consumer_state(broker, GATE_GROUP).ok is False
    transport = httpx.ASGITransport(app=health_app(readiness, None))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        answer = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200  # alive all the same
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not_ready"
    assert body["not_ready"] == ["gate_consumer", "kafka", "ledger"]
    assert body["checks"]["ledger"]["detail"] == "the ledger did not answer (ConnectionRefusedError)"
    assert body["checks"]["gate_consumer"]["detail"] == "consumer not started"
