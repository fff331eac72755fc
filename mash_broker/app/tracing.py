"""OpenTelemetry traces: one trace per notification, from the police producer to the Key Adult's read.

Off unless ``MASH_OTLP_ENDPOINT`` is set; OpenTelemetry (the ``[otel]`` extra) is imported only then.
The hops: a CLI producer (`mash police ingest`, `mash send`) starts the trace and sends its context in
the record's W3C ``traceparent`` header; FastStream's ``KafkaTelemetryMiddleware`` continues it in the
gate's handler; the gate queues the delivery with the handler's context in its outbox headers
(core.messages.headers_for), and the relay publishes it under that context, so the inbox's handler is
in the same trace; a person marking it read records ``notification.read`` as a span of the trace
too, linked to the delivery's context found in its outbox headers. Spans carry topics and ids, never
personal data (FastStream adds the message and correlation ids it sees).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker

from mash_broker.agencies.registry import REGISTRY
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import carry_trace_context, outbox_id
from mash_broker.core.ports import ObservedLedger
from mash_broker.core.records import OutboxRow
from mash_broker.core.relay import Publish
from mash_broker.core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = get_logger("mash.tracing")

SERVICE_NAME = "mash-broker"
_active: Tracing | None = None  # the process's tracing while started (the web's read span looks here)


class Tracing:
    """A tracer provider and the hooks that carry its context across the broker's hops."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("mash_broker")
        self.propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing | None:
        """Exporting to ``MASH_OTLP_ENDPOINT`` (OTLP over HTTP), or None when it is unset."""
        if not settings.otlp_endpoint:
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("tracing.unavailable", reason="install mash-broker[otel] for MASH_OTLP_ENDPOINT")
            return None
        endpoint = settings.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return cls(provider)

    def start(self) -> None:
        """From now on, records queued in the ledger carry the context of the work that queued them."""
        global _active
        _active = self
        carry_trace_context(self.current_headers)
        log.info("tracing.started")

    def stop(self) -> None:
        """Stop carrying contexts and flush what is left to export."""
        global _active
        if _active is self:
            _active = None
            carry_trace_context(None)
        self.provider.force_flush()

    def watch(self, broker: KafkaBroker) -> None:
        """Consume and publish spans for every handler and publisher of ``broker`` (before it starts)."""
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        broker.add_middleware(KafkaTelemetryMiddleware(tracer_provider=self.provider))

    def current_headers(self) -> dict[str, str]:
        """The current span's context as headers (``traceparent``), or none outside any span."""
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier)
        return carrier

    def context_of(self, headers: dict[str, str]) -> Context:
        return self.propagator.extract(headers)

    @contextlib.contextmanager
    def continuing(self, headers: dict[str, str]) -> Iterator[None]:
        """Make the context in ``headers`` current (a record queued by a traced handler)."""
        from opentelemetry import context

        token = context.attach(self.context_of(headers))
        try:
            yield
        finally:
            context.detach(token)

    def relay(self, publish: Publish) -> Publish:
        """The relay's publish, each record published in the trace that queued it."""

        async def traced(row: OutboxRow) -> None:
            with self.continuing(row.headers):
                await publish(row)

        return traced

    def producer(self, inner: Any) -> TracedProducer:
        return TracedProducer(inner, self)


class TracedProducer:
    """An aiokafka producer whose every send starts a trace (a producer span) and carries its context."""

    def __init__(self, inner: Any, tracing: Tracing) -> None:
        self.inner, self.tracing = inner, tracing

    async def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None, **kw: Any) -> Any:
        from opentelemetry.trace import SpanKind

        with self.tracing.tracer.start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ):
            carried = [(k, v.encode()) for k, v in self.tracing.current_headers().items()]
            sent = [(k, v) for k, v in (headers or []) if k not in dict(carried)] + carried
            return await self.inner.send(topic, value=value, key=key, headers=sent, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.asynccontextmanager
async def read_span(ledger: ObservedLedger, delivery_id: str, recipient: str) -> AsyncIterator[None]:
    """Record a person's read of a delivery as ``notification.read`` in the delivery's trace (a child of
    the context its outbox headers carry, and linked to it). Nothing at all when tracing is off."""
    tracing = _active
    if tracing is None:
        yield
        return
    from opentelemetry import trace

    headers = await ledger.outbox_headers(outbox_id(uuid.UUID(delivery_id), REGISTRY.delivery_topic(recipient)))
    parent = tracing.context_of(headers or {})
    found = trace.get_current_span(parent).get_span_context()
    links = [trace.Link(found)] if found.is_valid else []
    with tracing.tracer.start_as_current_span(
        "notification.read", context=parent, links=links, attributes={"mash.delivery_id": delivery_id}
    ):
        yield


def active() -> Tracing | None:
    """The tracing this process started, if any."""
    return _active
