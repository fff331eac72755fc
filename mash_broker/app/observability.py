"""Metrics and log context for the running services: what an operator watches (docs/operations.md).

Prometheus: FastStream's ``KafkaPrometheusMiddleware`` (messages consumed and published, per topic) and
the gate's own figures. The gate's figures are read from the ledger (storage.metrics) when scraped, at
most every ``ttl_s``: so they are the audited record's counts, whichever process wrote them, and two
gate replicas on one ledger report the same numbers (take ``max``, not ``sum``, across replicas).
Consumer lag is this process's: end offset minus committed offset of each partition its consumers
hold. Labels are verdicts, reasons, topics, clock names, consumer groups and agencies: no id of a
person or a message, ever.

Traces are in app.tracing; the log context every handler's lines carry is ``LogContext`` below.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mash_broker.core.logging import get_logger
from mash_broker.core.ports import LedgerFigures, ObservedLedger

if TYPE_CHECKING:
    from mash_broker.app.bootstrap import Services
    from mash_broker.app.tracing import Tracing

log = get_logger("mash.metrics")

RELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)  # seconds, due to published
_ORG = re.compile(r"^([a-z][a-z0-9_-]{0,31}):[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Lag:
    """One partition a consumer of this process holds: how far its group's committed offset is behind."""

    group: str
    topic: str
    partition: int
    lag: int


async def consumer_lag(broker: KafkaBroker) -> list[Lag]:
    """End offset minus committed offset for every partition this process's consumers are assigned."""
    out: list[Lag] = []
    for sub in broker.subscribers:
        consumer, group = getattr(sub, "consumer", None), getattr(sub, "group_id", None)
        if consumer is None or group is None:
            continue
        held = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        if not held:
            continue
        ends = await consumer.end_offsets(held)
        for tp in held:
            committed = await consumer.committed(tp)
            out.append(Lag(group, tp.topic, tp.partition, max(0, ends[tp] - (committed or 0))))
    return out


Counter, Gauge = CounterMetricFamily, GaugeMetricFamily
Family = type[CounterMetricFamily] | type[GaugeMetricFamily]


class GateCollector(Collector):
    """The gate's figures as of the last ``GateMetrics.refresh`` (a collector reads, it never queries)."""

    def __init__(self) -> None:
        self.figures: LedgerFigures | None = None
        self.lag: list[Lag] = []
        self.now: datetime | None = None

    def collect(self) -> Iterable[Metric]:
        f, now = self.figures, self.now
        families: list[tuple[Family, str, str, tuple[str, ...], Mapping[Any, float]]] = []
        if f is not None and now is not None:
            ages = {k: max(0.0, (now - v).total_seconds()) for k, v in f.outbox_oldest.items()}
            families += [
                (Counter, "mash_gate_decisions", "Decisions recorded, by verdict and primary reason.",
                 ("verdict", "reason"), f.decisions),
                (Counter, "mash_gate_quarantined", "Records quarantined, by reason.", ("reason",), _by(f.quarantines)),
                (Gauge, "mash_outbox_depth", "Outbox records not yet published (held ones too).", ("topic",),
                 _by(f.outbox_depth)),
                (Gauge, "mash_outbox_oldest_due_age_seconds", "Age of the oldest due outbox record not published.",
                 ("topic",), _by(ages)),
                (Counter, "mash_clock_warnings", "Clocks that reached their warning time, by clock.", ("clock",),
                 _by(f.clock_warnings)),
                (Counter, "mash_clock_breaches", "Clocks that breached their deadline, by clock.", ("clock",),
                 _by(f.clock_breaches)),
                (Gauge, "mash_deliveries_unacknowledged", "Deliveries no recipient system has acknowledged, by agency.",
                 ("agency",), _by(f.unacknowledged)),
                (Gauge, "mash_deliveries_unread", "Deliveries received, not yet read by a person, by agency.",
                 ("agency",), _by(f.unread)),
            ]  # fmt: skip
        lag = {(x.group, x.topic, str(x.partition)): float(x.lag) for x in self.lag}
        families.append((Gauge, "mash_consumer_lag", "Records behind: end offset minus committed, per held partition.",
                         ("group", "topic", "partition"), lag))  # fmt: skip
        for kind, name, doc, labels, values in families:
            family = kind(name, doc, labels=labels)
            for key, value in sorted(values.items()):
                family.add_metric(list(key), value)
            yield family


def _by(values: Mapping[str, float]) -> dict[tuple[str, ...], float]:
    return {(k,): v for k, v in values.items()}


class GateMetrics:
    """One registry for a stack: FastStream's middleware, the gate's figures and the relay's latency."""

    def __init__(
        self,
        ledger: ObservedLedger,
        clock: Callable[[], datetime],
        *,
        ttl_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger, self.clock, self.ttl_s, self.monotonic = ledger, clock, ttl_s, monotonic
        self.registry = CollectorRegistry()
        self.collector = GateCollector()
        self.registry.register(self.collector)
        self.relay_latency = Histogram(
            "mash_relay_latency_seconds",
            "From an outbox record being due (queued, or its hold ending) to its publication.",
            buckets=RELAY_BUCKETS,
            registry=self.registry,
        )
        self.middleware = KafkaPrometheusMiddleware(registry=self.registry, app_name="mash-broker")
        self.broker: KafkaBroker | None = None
        self._published_after = clock()  # relay latency counts publications from now on
        self._refreshed: float | None = None
        self._lock = asyncio.Lock()

    def watch(self, broker: KafkaBroker) -> None:
        """Count ``broker``'s messages, and sample its consumers' lag."""
        broker.add_middleware(self.middleware)
        self.broker = broker

    async def refresh(self) -> None:
        """Read the figures again if the last read is older than ``ttl_s`` (a scrape calls this first)."""
        async with self._lock:
            if self._refreshed is not None and self.monotonic() - self._refreshed < self.ttl_s:
                return
            now = self.clock()
            try:
                self.collector.figures = await self.ledger.figures(now)
                self.collector.now = now
                for due, published in await self.ledger.published_since(self._published_after):
                    self.relay_latency.observe(max(0.0, (published - due).total_seconds()))
                    self._published_after = max(self._published_after, published)
            except Exception as exc:  # the probe says why; the last figures stay
                log.warning("metrics.ledger_failed", error=type(exc).__name__)
            if self.broker is not None:
                try:
                    self.collector.lag = await asyncio.wait_for(consumer_lag(self.broker), 5)
                except Exception as exc:
                    log.warning("metrics.lag_failed", error=type(exc).__name__)
            self._refreshed = self.monotonic()

    async def exposition(self) -> bytes:
        """The Prometheus text format, figures refreshed first."""
        await self.refresh()
        return generate_latest(self.registry)


# -- one log context per unit of work ---------------------------------------------------------------


def _header(msg: StreamMessage[Any], name: str) -> str:
    value = msg.headers.get(name, "")
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def log_context(msg: StreamMessage[Any], inbox_agency: Mapping[str, str]) -> dict[str, str | None]:
    """The keys every line of one record's handling carries: ids checked as UUIDs, the agency as the
    bounded part of an organisation id (the sender's at the gate, the inbox's own at an inbox)."""
    raw = msg.raw_message
    topic = str(getattr(raw, "topic", "") or "")
    sender = _ORG.match(_header(msg, "sender-org"))
    return {
        "message_id": _uuid_or_none(_header(msg, "message-id")),
        "correlation_id": _uuid_or_none(_header(msg, "correlation-id")),
        "agency": inbox_agency.get(topic) or (sender.group(1) if sender else None),
        "topic": topic or None,
    }


def record_log_context(
    topic: str, headers: Iterable[tuple[str, bytes]], inbox_agency: Mapping[str, str]
) -> dict[str, str | None]:
    """``log_context`` for one record of a batch (its topic and raw headers)."""
    found = {k: v.decode(errors="replace") for k, v in headers}
    sender = _ORG.match(found.get("sender-org", ""))
    return {
        "message_id": _uuid_or_none(found.get("message-id", "")),
        "correlation_id": _uuid_or_none(found.get("correlation-id", "")),
        "agency": inbox_agency.get(topic) or (sender.group(1) if sender else None),
        "topic": topic or None,
    }


class LogContext:
    """A FastStream middleware: binds ``message_id``, ``correlation_id``, ``agency`` and ``topic`` with
    structlog's context variables for exactly the handling of one record, so every line a handler (and
    the core under it) logs names the unit of work, and none leaks into the next. A batch subscriber binds
    each record's own (``record_log_context``) around that record's handling: nothing is bound here."""

    def __init__(self, inbox_agency: Mapping[str, str]) -> None:
        self.inbox_agency = dict(inbox_agency)

    def __call__(self, msg: Any | None, /, *, context: Any) -> BaseMiddleware:
        return _Bound(msg, context=context, inbox_agency=self.inbox_agency)


class _Bound(BaseMiddleware):
    def __init__(self, msg: Any | None, /, *, context: Any, inbox_agency: Mapping[str, str]) -> None:
        super().__init__(msg, context=context)
        self.inbox_agency = inbox_agency

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        if isinstance(msg.raw_message, tuple):  # a batch: each record is bound by the handler
            return await call_next(msg)
        with structlog.contextvars.bound_contextvars(**log_context(msg, self.inbox_agency)):
            return await call_next(msg)


class PerRecordTelemetry:
    """FastStream's telemetry middleware for single records; a batch passes through untouched, and the
    batch handler opens each record's own consume span (``Services.trace_record``), so every notification
    stays one trace from its producer on, however it was batched."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    def __call__(self, msg: Any | None, /, *, context: Any) -> BaseMiddleware:
        if isinstance(msg, tuple):
            return BaseMiddleware(msg, context=context)
        middleware: BaseMiddleware = self.inner(msg, context=context)
        return middleware


def record_span(
    tracing: Tracing,
) -> Callable[[str, int, int, Iterable[tuple[str, bytes]]], AbstractContextManager[Any]]:
    """A consume span for one record of a batch, as FastStream names single records' (``<topic> process``),
    a child of the context the record's headers carry (its producer's, or the relay's publish)."""
    from opentelemetry.trace import SpanKind

    def span(
        topic: str, partition: int, offset: int, headers: Iterable[tuple[str, bytes]]
    ) -> AbstractContextManager[Any]:
        carried = {k: v.decode(errors="replace") for k, v in headers}
        return tracing.tracer.start_as_current_span(
            f"{topic} process",
            context=tracing.context_of(carried),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.operation": "process",
                "messaging.kafka.destination.partition": partition,
                "messaging.kafka.message.offset": offset,
            },
        )

    return span


def instrument(services: Services, gate_metrics: GateMetrics, tracing: Tracing | None) -> None:
    """Before the services start: count their messages, and trace them when tracing is on (the relay
    then publishes each record in the trace of the handler that queued it)."""
    gate_metrics.watch(services.broker)
    if tracing is not None:
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        # As ``tracing.watch`` does, but a batch's records are each their own span (``PerRecordTelemetry``).
        services.broker.add_middleware(PerRecordTelemetry(KafkaTelemetryMiddleware(tracer_provider=tracing.provider)))
        services.trace_record = record_span(tracing)
        services.relay.publish = tracing.relay(services.relay.publish)
