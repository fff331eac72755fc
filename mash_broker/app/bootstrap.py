"""Composition root: wires the ledger, the gate, the agencies' inboxes and the relay onto one broker.

Everything agency-specific comes from the registry (``mash_broker.agencies.registry.REGISTRY``): the
gate's subscriptions, the publishers, one inbox subscriber per agency inbox, the directories."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.specification import AsyncAPI

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.dead_letters import Received, RecordGuard
from mash_broker.app.kafka_security import PLAINTEXT, KafkaSecurity
from mash_broker.app.observability import LogContext
from mash_broker.contracts import Envelope
from mash_broker.core.agency import Inbox
from mash_broker.core.area_files import region_of
from mash_broker.core.clocks import load_calendar
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.intake import Unreadable, read_envelope
from mash_broker.core.logging import get_logger
from mash_broker.core.policy import LoadedPolicy, load_policy, record_policy
from mash_broker.core.relay import Relay
from mash_broker.core.settings import Settings
from mash_broker.core.signing import StackSigning
from mash_broker.storage import Ledger, OutboxRow

log = get_logger("mash.app")

GATE_GROUP = "mash-gate"


def inbox_group(agency: str) -> str:
    """An agency inbox's consumer group (``mash-education``, ``mash-health``, ...)."""
    return f"mash-{agency}"


def utc_now() -> datetime:
    return datetime.now(UTC)


async def _raw_body(msg: Any) -> bytes:
    """Hand handlers the bytes as sent: the contract is parsed (and refused) by our code, not FastStream's."""
    return bytes(msg.body)


@dataclass
class Services:
    """The running parts of `mash up`: one FastStream app, its broker, the ledger and the relay."""

    app: FastStream
    broker: KafkaBroker
    ledger: Ledger
    relay: Relay
    gate: GateContext
    policy: LoadedPolicy

    async def start(self) -> None:
        await record_policy(self.ledger, self.policy, self.gate.clock())
        for loaded in self.gate.region.policies if self.gate.region is not None else ():
            await record_policy(self.ledger, loaded, self.gate.clock())  # the region's and each authority's
        await self.broker.start()
        self.relay.start()

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.relay.stop(), 10)
        except TimeoutError:
            log.warning("relay.stop_timed_out")
        await self.broker.stop()


def build_broker(bootstrap: str, *, embedded: bool, security: KafkaSecurity = PLAINTEXT) -> KafkaBroker:
    # acks="all" always; idempotence only where the broker has InitProducerId (not the embedded one).
    return KafkaBroker(
        [server.strip() for server in bootstrap.split(",") if server.strip()],  # FastStream takes a str as one host
        acks="all",
        enable_idempotence=not embedded,
        linger_ms=5,
        client_id="mash-broker",
        logger=None,
        security=security.faststream(),
    )


def build_services(
    settings: Settings, ledger: Ledger, broker: KafkaBroker, clock: Callable[[], datetime] = utc_now
) -> Services:
    """Declare subscribers and publishers on ``broker`` and return the services, not yet started."""
    calendar = load_calendar(settings.school_calendar, settings.timezone)
    policy = load_policy(settings.policy_file, REGISTRY.policy_kinds)
    gate = GateContext(
        ledger=ledger,
        policy=policy.policy,
        calendar=calendar,
        notify_by=settings.notify_by,
        school_day_starts=settings.school_day_starts,
        clock=clock,
        registry=REGISTRY,
        consent_settle=timedelta(seconds=settings.consent_settle_s),
        directories=REGISTRY.load_directories(settings),
        region=region_of(settings, policy, calendar, REGISTRY.policy_kinds),
    )
    signing = StackSigning.from_settings(
        settings.keys_dir, settings.key_registry_file, required=settings.require_signatures
    )
    gate.verifier, gate.signer = signing.verifier, signing.gate
    # Every line of one record's handling names it: message_id, correlation_id, agency, topic (structlog contextvars).
    broker.add_middleware(LogContext({sub.topic: sub.agency for sub in REGISTRY.inboxes}))
    publishers = {t: broker.publisher(t, schema=Envelope, title=t) for t in REGISTRY.outbound_topics}

    async def publish(row: OutboxRow) -> None:
        headers = {k: v for k, v in row.headers.items()}
        pub = publishers.get(row.topic)
        if pub is not None:
            await pub.publish(row.value.encode(), key=row.key.encode() if row.key else None, headers=headers)
        else:
            await broker.publish(
                row.value.encode(), row.topic, key=row.key.encode() if row.key else None, headers=headers
            )

    relay = Relay(ledger, publish, clock, interval_s=settings.relay_interval_s)

    async def publish_dead_letter(value: bytes, topic: str, key: bytes | None, headers: dict[str, str]) -> None:
        await broker.publish(value, topic, key=key, headers=headers)

    gate_guard = RecordGuard("gate", publish_dead_letter)

    @broker.subscriber(
        *REGISTRY.inbound_topics,
        group_id=GATE_GROUP,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_body,
        title="gate",
        description="The consent gate: every inbound message is decided and recorded.",
    )
    async def gate_handler(body: bytes, msg: KafkaMessage) -> None:
        record = Received.of(msg.raw_message)

        async def decide() -> None:
            outcome = await process_inbound(gate, body, record.topic)
            # Quarantined by the gate (its sender told); parked too if it cannot even be read.
            if outcome in ("rejected", "duplicate") and isinstance(unreadable := read_envelope(body), Unreadable):
                await gate_guard.park(record, body, unreadable.reason, unreadable.detail)

        await gate_guard.handle(record, body, decide)
        relay.poke()

    def inbox(topic: str, group: str, title: str, description: str, receive: Inbox) -> None:
        guard = RecordGuard(title, publish_dead_letter)

        @broker.subscriber(
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_body,
            title=title,
            description=description,
        )
        async def inbox_handler(body: bytes, msg: KafkaMessage) -> None:
            record = Received.of(msg.raw_message)

            async def receive_one() -> None:
                if isinstance(unreadable := read_envelope(body), Unreadable):
                    await guard.park(record, body, unreadable.reason, unreadable.detail)
                else:
                    await receive(ledger, body, clock(), sign=signing.acks)

            await guard.handle(record, body, receive_one)
            relay.poke()

    for sub in REGISTRY.inboxes:
        inbox(sub.topic, inbox_group(sub.agency), f"{sub.agency}-inbox", sub.description, sub.receive)

    app = FastStream(
        broker,
        specification=AsyncAPI(title="MASH Broker", version="1.0.0", description="Multi-agency safeguarding broker"),
    )
    return Services(app=app, broker=broker, ledger=ledger, relay=relay, gate=gate, policy=policy)


def asyncapi_document(settings: Settings) -> str:
    """The AsyncAPI document FastStream generates for the app (no connection is made)."""
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(settings, ledger=None, broker=broker)  # type: ignore[arg-type]
    spec = services.app.schema.to_specification()
    return json.dumps(spec.to_jsonable(), indent=2, sort_keys=True)
