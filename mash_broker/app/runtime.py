"""Starting and stopping the stack: the embedded broker (unless Kafka is configured), ledger and services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app import alerts
from mash_broker.app.bootstrap import GATE_GROUP, Services, build_broker, build_services, utc_now
from mash_broker.app.embedded import EmbeddedBroker, resolve_bootstrap
from mash_broker.app.health import HealthServer, Readiness, start_health
from mash_broker.app.kafka import ensure_topics, producer_kwargs
from mash_broker.app.kafka_security import kafka_security
from mash_broker.app.observability import GateMetrics, instrument
from mash_broker.app.tracing import Tracing
from mash_broker.app.web.server import WebServer, start_web
from mash_broker.core.audit.checkpoints import start_checkpointer
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.clocks.keeper import start_clock_keeper
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import outbox_id
from mash_broker.core.projector import Projector
from mash_broker.core.settings import Settings
from mash_broker.core.signing import Signers, ensure_gate_key
from mash_broker.storage import Ledger, Tx

log = get_logger("mash.runtime")


@dataclass
class Stack:
    """What is running: the bootstrap address, the ledger, and the services if started."""

    bootstrap: str
    embedded: bool
    ledger: Ledger
    services: Services | None
    web: WebServer | None = None
    broker: EmbeddedBroker | None = None  # the embedded broker this stack started (`mash up` watches it)
    health: HealthServer | None = None  # /healthz, /readyz and /metrics on MASH_HEALTH_PORT (with services)


async def open_ledger(settings: Settings) -> Ledger:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await Ledger.open(settings.ledger_url)


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    start_broker: bool = True,
    services: bool = True,
    web: bool = False,
    clock: Callable[[], datetime] = utc_now,
) -> AsyncIterator[Stack]:
    """Start what `mash up` runs; everything is stopped in reverse order on exit, however it exits.
    ``web``: also serve the pages (Key Adult inbox, MASH board) on MASH_WEB_HOST:MASH_WEB_PORT."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        embedded = settings.kafka_bootstrap is None
        if embedded and start_broker:
            broker_proc = EmbeddedBroker()
            bootstrap = await broker_proc.start(settings.data_dir)
            stack.callback(broker_proc.stop)
        else:
            bootstrap = resolve_bootstrap(settings)
        security = kafka_security(settings)  # refused here, naming the setting, before any connection
        if embedded:
            await ensure_topics(bootstrap, REGISTRY.all_topics)
        else:
            await ensure_topics(
                bootstrap,
                REGISTRY.all_topics,
                settings.kafka_partitions,
                replication_factor=settings.kafka_replication_factor,
                min_insync_replicas=settings.kafka_min_insync_replicas,
                security=security,
            )
        ledger = await open_ledger(settings)
        stack.push_async_callback(ledger.close)
        if embedded and start_broker:
            await republish_undelivered(ledger)
        pages, health = None, None
        readiness = Readiness(ledger)  # /readyz on both ports: the ledger, then Kafka and the gate's consumer
        if web:  # stopped after the services: a read recorded while stopping still reaches the relay's ledger
            pages = await start_web(settings, ledger, clock, Signers(KeyStore(settings.keys_dir)), readiness)
            stack.push_async_callback(pages.stop)
            settings = pages.settings  # the port it got, for the links in alerts
        svc = None
        if services:
            ensure_gate_key(settings, clock())
            # Stopped after the services (exit runs in reverse): the last checkpoint covers their last events.
            stack.push_async_callback(start_checkpointer(settings, ledger, clock).stop)
            keeper = start_clock_keeper(settings, ledger, clock, REGISTRY.delivery_topic)
            stack.push_async_callback(keeper.stop)
            # Clocks and alert queuing follow the audited log, whichever process appended to it: started
            # before the gate, so they see its first event within a poll (or at once: a poke).
            projector = Projector[Tx](
                ledger, (keeper.projection, alerts.AlertQueue(settings)), interval_s=settings.projector_interval_s
            )
            await projector.start()
            ledger.on_append(projector.poke)
            stack.push_async_callback(projector.stop)
            if alerts.enabled(settings):  # queued by the projector, sent by their own task
                sender = alerts.AlertSender(settings, ledger, clock)
                sender.start()
                stack.push_async_callback(sender.stop)
            svc = build_services(settings, ledger, build_broker(bootstrap, embedded=embedded, security=security), clock)
            gate_metrics, tracing = GateMetrics(ledger, clock), Tracing.from_settings(settings)
            instrument(svc, gate_metrics, tracing)
            if tracing is not None:  # stopped (and flushed) after the services
                tracing.start()
                stack.callback(tracing.stop)
            await svc.start()
            stack.push_async_callback(svc.stop)
            readiness.watch(svc.broker, GATE_GROUP)
            health = await start_health(settings, readiness, gate_metrics)
            stack.push_async_callback(health.stop)
        log.info("stack.started", bootstrap=bootstrap, embedded=embedded, services=services)
        yield Stack(
            bootstrap=bootstrap,
            embedded=embedded,
            ledger=ledger,
            services=svc,
            web=pages,
            broker=broker_proc if embedded and start_broker else None,
            health=health,
        )


async def republish_undelivered(ledger: Ledger) -> int:
    """A new embedded broker starts empty (memory only): deliveries the ledger has as published but no
    recipient's system has received may have died with the last one, so the relay publishes them again,
    on whatever topic each went out on (the outbox's own record). Inboxes deduplicate by delivery id,
    so one that did arrive is not delivered twice."""
    async with ledger.transaction() as tx:
        again = await tx.republish_undelivered(outbox_id)
    if again:
        log.info(
            "outbox.republished",
            count=sum(again.values()),
            topics=dict(sorted(again.items())),
            reason="embedded_broker_restarted",
        )
    return sum(again.values())


@asynccontextmanager
async def producer(settings: Settings, bootstrap: str) -> AsyncIterator[Any]:
    """A plain aiokafka producer for CLI commands that publish (acks=all; idempotent on real Kafka); with
    MASH_OTLP_ENDPOINT set, each send starts a notification's trace (app.tracing)."""
    prod = AIOKafkaProducer(
        **producer_kwargs(bootstrap, embedded=settings.kafka_bootstrap is None, security=kafka_security(settings))
    )
    await prod.start()
    tracing = Tracing.from_settings(settings)
    try:
        yield prod if tracing is None else tracing.producer(prod)
    finally:
        await prod.stop()
        if tracing is not None:
            tracing.stop()
