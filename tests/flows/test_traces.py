"""One trace per notification, from the police producer to the Key Adult's read, on the real app.

The hops, as an in-memory span exporter sees them under TestKafkaBroker: the police producer's send (the
CLI's producer, app.tracing.TracedProducer), the gate's handler, the relay's publish of the delivery
(continuing the trace the gate queued it in: its outbox headers), the school inbox's handler, and
``notification.read`` when the Key Adult marks it read (a child of, and linked to, the delivery's context).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flows.conftest import KEY_ADULT, NOW, SCHOOL_URN
from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.education.inbox import record_read
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.app.bootstrap import build_broker, build_services
from mash_broker.app.observability import GateMetrics, instrument
from mash_broker.app.tracing import Tracing, read_span
from mash_broker.contracts import Envelope
from mash_broker.core.messages import encode, headers_for
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99 1AA", "Ada Keyadult", "ada.keyadult")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(tmp_path: Path, ledger: Ledger, keyring: Any, exporter: InMemorySpanExporter) -> AsyncIterator[Any]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(Settings(data_dir=tmp_path), ledger, broker, lambda: NOW)
    instrument(services, GateMetrics(ledger, lambda: NOW), tracing)
    tracing.start()
    try:
        async with TestKafkaBroker(broker):
            yield tracing, broker, services
    finally:
        tracing.stop()


class IntoTheBroker:
    """What `mash police ingest`'s aiokafka producer does, into the in-memory broker."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    async def send(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> None:
        await self.broker.publish(value, topic, key=key, headers={k: v.decode() for k, v in headers})


async def test_one_notification_is_one_trace_from_the_police_producer_to_the_key_adults_read(
    traced: Any, ledger: Ledger, notification: Callable[..., Envelope], exporter: InMemorySpanExporter
) -> None:
    tracing, broker, services = traced
    message = notification()
    police = tracing.producer(IntoTheBroker(broker))
    await police.send(
        POLICE_NOTIFICATIONS,
        value=encode(message).encode(),
        key=str(message.correlation_id).encode(),
        headers=[(k, v.encode()) for k, v in headers_for(message).items()],
    )
    assert await services.relay.drain() >= 2  # the delivery and the gate's receipt, then the school's receipt
    [row] = await ledger.deliveries_for(f"school:{SCHOOL_URN}")
    assert row.delivered_at == NOW
    async with read_span(ledger, row.delivery_id, row.recipient):  # as the web page's "mark as read" does
        await record_read(ledger, SCHOOL_URN, row.delivery_id, KEY_ADULT[0], NOW)
    await services.relay.drain()

    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    names = [s.name for s in spans]
    for hop in (
        f"{POLICE_NOTIFICATIONS} publish",  # the police producer
        f"{POLICE_NOTIFICATIONS} process",  # the gate's handler
        f"{EDUCATION_DELIVERIES} publish",  # the relay publishing the delivery
        f"{EDUCATION_DELIVERIES} process",  # the school inbox's handler
        "notification.read",  # the Key Adult's read
    ):
        assert hop in names, (hop, names)
    assert len({s.context.trace_id for s in spans if s.context}) == 1, "one trace for the whole journey"

    def first(name: str) -> ReadableSpan:
        return next(s for s in spans if s.name == name)

    def ancestors(span: ReadableSpan) -> set[str]:
        by_id = {s.context.span_id: s for s in spans if s.context}
        found, parent = set(), span.parent
        while parent is not None and parent.span_id in by_id:
            found.add(by_id[parent.span_id].name)
            parent = by_id[parent.span_id].parent
        return found

    # Each hop follows the one before it: the read descends from the gate, the inbox from the gate and police.
    assert f"{POLICE_NOTIFICATIONS} publish" in ancestors(first(f"{POLICE_NOTIFICATIONS} process"))
    inbox = ancestors(first(f"{EDUCATION_DELIVERIES} process"))
    assert {f"{POLICE_NOTIFICATIONS} process", f"{EDUCATION_DELIVERIES} create"} <= inbox  # create: FastStream's
    read = first("notification.read")
    assert f"{POLICE_NOTIFICATIONS} process" in ancestors(read)
    assert read.links, "the read is linked to the delivery's context"
    for span in spans:  # ids and topics only
        text = " ".join(str(v) for v in (span.attributes or {}).values())
        assert not any(p in text for p in PERSONAL), (span.name, span.attributes)


async def test_no_trace_context_is_carried_when_tracing_is_off(notification: Callable[..., Envelope]) -> None:
    assert "traceparent" not in headers_for(notification())
