"""Composition root: wires the ledger, the gate, the agencies' inboxes and the relay onto one broker.

Everything agency-specific comes from the registry (``mash_broker.agencies.registry.REGISTRY``): the
gate's subscriptions, the publishers, one inbox subscriber per agency inbox, the directories."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.specification import AsyncAPI
from sqlalchemy import RowMapping

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.dead_letters import Received, RecordGuard
from mash_broker.app.kafka_security import PLAINTEXT, KafkaSecurity
from mash_broker.app.observability import LogContext, record_log_context
from mash_broker.contracts import Envelope
from mash_broker.core.agency import Inbox
from mash_broker.core.area_files import region_of
from mash_broker.core.clocks import load_calendar
from mash_broker.core.gate_service import GateContext, process_batch, process_inbound
from mash_broker.core.intake import Unreadable, read_envelope
from mash_broker.core.logging import get_logger
from mash_broker.core.policy import LoadedPolicy, load_policy, record_policy
from mash_broker.core.relay import Relay
from mash_broker.core.settings import Settings
from mash_broker.core.signing import StackSigning
from mash_broker.storage import Ledger, OutboxRow
from mash_broker.storage.tx import Tx

log = get_logger("mash.app")

GATE_GROUP = "mash-gate"
BATCH_RECORDS = 50  # records a subscriber takes at once: one ledger transaction (and SQLite write lock) for them all
BATCH_TIMEOUT_MS = 100  # how long an idle subscriber waits for records before it looks again


def inbox_group(agency: str) -> str:
    """An agency inbox's consumer group (``mash-education``, ``mash-health``, ...)."""
    return f"mash-{agency}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _records(msg: Any) -> list[Any]:
    """The consumer records of a batch (the in-memory test broker nests them in a list)."""
    raw = msg.raw_message
    out: list[Any] = []
    for r in raw if isinstance(raw, tuple | list) else (raw,):
        out.extend(r if isinstance(r, tuple | list) else (r,))
    return out


async def _raw_bodies(msg: Any) -> list[bytes]:
    """Hand handlers each record's bytes as sent: the contract is parsed (and refused) by our code, not
    FastStream's."""
    body = msg.body
    return [bytes(b or b"") for b in body] if isinstance(body, list) else [bytes(body)]


class _InBatch(Ledger):
    """The ledger as one record of an inbox's batch sees it: its transaction is the batch's (entered and
    left without committing), and its reads run on the batch's connection too (they see what the records
    before it wrote, and never wait for a second connection while the batch holds the write lock)."""

    def __init__(self, ledger: Ledger, tx: Tx) -> None:
        super().__init__(ledger.engine)
        self._tx = tx

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        yield self._tx

    async def _all(self, q: Any) -> list[RowMapping]:
        return await self._tx._rows(q)


@dataclass
class Services:
    """The running parts of `mash up`: one FastStream app, its broker, the ledger and the relay."""

    app: FastStream
    broker: KafkaBroker
    ledger: Ledger
    relay: Relay
    gate: GateContext
    policy: LoadedPolicy
    # Opens the consume span of one record of a batch (topic, partition, offset, headers): set when traced.
    trace_record: Callable[[str, int, int, Iterable[tuple[str, bytes]]], AbstractContextManager[Any]] | None = None

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


class _Broker(KafkaBroker):
    """FastStream's broker, its subscribers started together: each one's consumer waits for its group's
    first assignment before it returns (about 5 s on the embedded broker, whatever the load), and
    FastStream starts them one after the other, so a stack of six subscribers took 30 s to start, and as
    long again after every restart of the embedded broker."""

    async def start(self) -> None:
        await self.connect()
        await asyncio.gather(*(subscriber.start() for subscriber in self.subscribers))
        for publisher in self.publishers:
            await publisher.start()
        self.running = True


def build_broker(bootstrap: str, *, embedded: bool, security: KafkaSecurity = PLAINTEXT) -> KafkaBroker:
    # acks="all" always; idempotence only where the broker has InitProducerId (not the embedded one).
    return _Broker(
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
    broker.add_middleware(LogContext({sub.topic: sub.agency for sub in REGISTRY.inboxes}))  # single records
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
    inbox_agency = {sub.topic: sub.agency for sub in REGISTRY.inboxes}
    services_ref: list[Services] = []  # the services, once built: their trace hook is set by instrument()

    def around(records: Sequence[Received]) -> Callable[[int], AbstractContextManager[Any]]:
        """Entered around record ``i`` of a batch: its log context bound, and its consume span when traced."""

        @contextlib.contextmanager
        def one(i: int) -> Iterator[None]:
            r = records[i]
            trace = services_ref[0].trace_record if services_ref else None
            with contextlib.ExitStack() as stack:
                stack.enter_context(
                    structlog.contextvars.bound_contextvars(**record_log_context(r.topic, r.headers, inbox_agency))
                )
                if trace is not None:
                    stack.enter_context(trace(r.topic, r.partition, r.offset, r.headers))
                yield

        return one

    async def park_unreadable(guard: RecordGuard, record: Received, body: bytes, outcome: str) -> None:
        """Quarantined by the gate (its sender told); parked too if it cannot even be read."""
        if outcome in ("rejected", "duplicate") and isinstance(unreadable := read_envelope(body), Unreadable):
            await guard.park(record, body, unreadable.reason, unreadable.detail)

    @broker.subscriber(
        *REGISTRY.inbound_topics,
        group_id=GATE_GROUP,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=BATCH_RECORDS,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        decoder=_raw_bodies,
        title="gate",
        description="The consent gate: every inbound message is decided and recorded.",
    )
    async def gate_handler(bodies: list[bytes], msg: KafkaMessage) -> None:
        # A batch as the consumer fetched it (each partition's records in order): decided in ONE ledger
        # transaction; the offsets are committed (ack) only after it commits.
        records = [Received.of(r) for r in _records(msg)]
        with_topics = [(body, r.topic) for body, r in zip(bodies, records, strict=True)]
        in_turn = around(records)

        async def together() -> None:
            outcomes = await process_batch(gate, with_topics, around=in_turn)
            for record, body, outcome in zip(records, bodies, outcomes, strict=True):
                await park_unreadable(gate_guard, record, body, outcome)

        async def alone(i: int) -> None:
            with in_turn(i):
                outcome = await process_inbound(gate, bodies[i], records[i].topic)
                await park_unreadable(gate_guard, records[i], bodies[i], outcome)

        await gate_guard.handle_batch(records, bodies, together, alone)
        relay.poke()

    def inbox(topic: str, group: str, title: str, description: str, receive: Inbox) -> None:
        guard = RecordGuard(title, publish_dead_letter)

        @broker.subscriber(
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            batch=True,
            max_records=BATCH_RECORDS,
            batch_timeout_ms=BATCH_TIMEOUT_MS,
            decoder=_raw_bodies,
            title=title,
            description=description,
        )
        async def inbox_handler(bodies: list[bytes], msg: KafkaMessage) -> None:
            records = [Received.of(r) for r in _records(msg)]
            in_turn = around(records)

            async def receive_one(target: Any, i: int) -> None:
                with in_turn(i):
                    if isinstance(unreadable := read_envelope(bodies[i]), Unreadable):
                        await guard.park(records[i], bodies[i], unreadable.reason, unreadable.detail)
                    else:
                        await receive(target, bodies[i], clock(), sign=signing.acks)

            async def together() -> None:
                # Every record of the batch in one transaction: the inbox's writes join it (``_InBatch``).
                async with ledger.transaction() as tx:
                    joined = _InBatch(ledger, tx)
                    for i in range(len(records)):
                        await receive_one(joined, i)

            await guard.handle_batch(records, bodies, together, functools.partial(receive_one, ledger))
            relay.poke()

    for sub in REGISTRY.inboxes:
        inbox(sub.topic, inbox_group(sub.agency), f"{sub.agency}-inbox", sub.description, sub.receive)

    app = FastStream(
        broker,
        specification=AsyncAPI(title="MASH Broker", version="1.0.0", description="Multi-agency safeguarding broker"),
    )
    services = Services(app=app, broker=broker, ledger=ledger, relay=relay, gate=gate, policy=policy)
    services_ref.append(services)
    return services


def asyncapi_document(settings: Settings) -> str:
    """The AsyncAPI document FastStream generates for the app (no connection is made)."""
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(settings, ledger=None, broker=broker)  # type: ignore[arg-type]
    spec = services.app.schema.to_specification()
    return json.dumps(spec.to_jsonable(), indent=2, sort_keys=True)
