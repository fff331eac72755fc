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
from mash_broker.app.health import Readiness, gate_consumer_state
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
    assert stack.health is not None and stack.web is not None
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
        for name in ("mash_consumer_lag", "mash_relay_latency_seconds_bucket", "mash_outbox_depth",
                     "mash_deliveries_unacknowledged", "mash_gate_decisions", "mash_clock_breaches"):
            assert f"# TYPE {name.removesuffix('_bucket')}" in text or name in text, name
        assert 'mash_consumer_lag{group="mash-gate"' in text  # the gate's partitions, sampled


async def test_a_second_gate_replica_with_no_partition_left_is_ready_as_a_standby(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path, web_port=0, health_port=0)
    async with running(first, web=True) as one:
        await wait_ready(f"{urls(one)[0]}/readyz")
        # `mash serve` beside it: the same broker (its broker.json) and ledger, the same consumer group.
        async with running(first, start_broker=False) as two:
            assert two.health is not None

            def standby(body: dict[str, Any]) -> bool:
                return "assigned no partitions" in body["checks"]["gate_consumer"]["detail"]

            bodies = await settle_on(lambda: [wait_ready(f"{s.health.url}/readyz") for s in (one, two) if s.health],
                                     lambda found: any(standby(b) for b in found))
            assert all(b["status"] == "ready" for b in bodies)
            assert sum(standby(b) for b in bodies) >= 1, bodies
            assert "standby" in next(b for b in bodies if standby(b))["checks"]["gate_consumer"]["detail"]


async def settle_on(ask: Callable[[], list[Any]], until: Callable[[list[dict[str, Any]]], bool],
                    timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Ask each probe again until ``until`` holds of the answers (a rebalance takes a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = list(await asyncio.gather(*ask()))
        if until(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


class DeadLedger:
    async def ledger_answers(self) -> bool:
        raise ConnectionRefusedError


async def test_not_ready_answers_503_naming_what_is_not_ready() -> None:
    from starlette.testclient import TestClient

    from mash_broker.app.health import health_app

    broker = KafkaBroker("127.0.0.1:1")  # never started: no consumer, Kafka unreachable

    @broker.subscriber("gate.in.v1", group_id=GATE_GROUP)
    async def gate(body: bytes) -> None: ...

    readiness = Readiness(DeadLedger())  # type: ignore[arg-type]
    readiness.watch(broker, GATE_GROUP)
    assert gate_consumer_state(broker, GATE_GROUP).ok is False
    with TestClient(health_app(readiness, None)) as client:  # type: ignore[arg-type]
        answer = client.get("/readyz")
        assert client.get("/healthz").status_code == 200  # alive all the same
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not_ready"
    assert body["not_ready"] == ["gate_consumer", "kafka", "ledger"]
    assert body["checks"]["ledger"]["detail"] == "the ledger did not answer (ConnectionRefusedError)"
    assert body["checks"]["gate_consumer"]["detail"] == "consumer not started"
