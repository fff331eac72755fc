"""/metrics on the real app: the gate's figures come from the ledger a flow wrote, FastStream's from its handlers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from flows.conftest import NOW, Flow
from mash_broker.app.observability import GateMetrics
from mash_broker.contracts import Envelope

PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99 1AA", "EXP/2026")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_the_gates_figures_follow_what_the_ledger_recorded(
    flow: Flow, notification: Callable[..., Envelope]
) -> None:
    now = [NOW - timedelta(seconds=1)]
    metrics = GateMetrics(flow.ledger, lambda: now[0], ttl_s=0)
    metrics.watch(flow.broker)  # FastStream's middleware: counts what the handlers consume from here on
    await flow.send(notification().model_dump_json().encode())
    await flow.send(notification(no_basis=True).model_dump_json().encode())
    now[0] = NOW + timedelta(seconds=30)

    before = samples((await metrics.exposition()).decode())
    assert value(before, "mash_gate_decisions_total", verdict="share", reason="statutory_duty") == 1
    assert value(before, "mash_gate_decisions_total", verdict="withhold", reason="no_lawful_basis") == 1
    assert value(before, "mash_gate_quarantined_total", reason="no_lawful_basis") == 1
    assert value(before, "mash_deliveries_unacknowledged", agency="school") == 1
    assert value(before, "mash_outbox_depth", topic="education.delivery.v1") == 1
    assert value(before, "mash_outbox_oldest_due_age_seconds", topic="education.delivery.v1") == 30

    await flow.settle()
    after = samples((await metrics.exposition()).decode())
    assert value(after, "mash_deliveries_unacknowledged", agency="school") == 0
    assert value(after, "mash_deliveries_unread", agency="school") == 1
    assert value(after, "mash_outbox_depth", topic="education.delivery.v1") == 0
    published = value(after, "mash_relay_latency_seconds_count")
    assert published >= 3  # the delivery, the gate's receipts, the school's receipt
    assert value(after, "mash_relay_latency_seconds_bucket", le="0.05") == published  # published at once
    assert any(name.startswith("faststream_received_messages_total") for name, _ in after), sorted(after)[:5]


async def test_no_label_carries_an_id_or_anything_personal(flow: Flow, notification: Callable[..., Envelope]) -> None:
    metrics = GateMetrics(flow.ledger, lambda: NOW, ttl_s=0)
    message = notification()
    await flow.send(message.model_dump_json().encode())
    await flow.settle()
    text = (await metrics.exposition()).decode()
    assert not any(p in text for p in PERSONAL)
    assert str(message.message_id) not in text
    assert str(message.correlation_id) not in text
    assert "900001" not in text  # a school's URN is folded into its agency
