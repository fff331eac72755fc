"""The real app (gate, school inbox, relay) wired onto an in-memory TestKafkaBroker with a SQLite ledger.

Test subscribers on the outbound topics capture what the relay publishes. TestKafkaBroker runs
handlers inline, so once ``publish`` and ``settle`` return, everything downstream has run.

Signatures are checked as in production: the ``keyring`` holds the police and gate keys in the data
dir the app reads, and ``notification`` signs what it makes as the police adapter does.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from signing_helpers import Keyring

from mash_broker.agencies.police import POLICE_ACKNOWLEDGEMENTS, POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.app.bootstrap import Services, build_broker, build_services
from mash_broker.contracts import Envelope, topics
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)  # a Tuesday in term, before the 10:00 deadline
SCHOOL_URN = "900001"
KEY_ADULT = ("Ada Keyadult", "ada.keyadult@school.example")
CAPTURED = (
    POLICE_RECEIPTS,
    POLICE_ACKNOWLEDGEMENTS,
    topics.GATE_QUARANTINE,
    topics.MASH_QUEUE,
    topics.receipts_topic("probation:x"),
    topics.acknowledgements_topic("la:x"),
)


@dataclass(frozen=True)
class Record:
    """One record a test subscriber saw."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    def envelope(self) -> Envelope:
        return Envelope.model_validate_json(self.value)


@dataclass
class Flow:
    """The app under test, the in-memory broker and what reached the outbound topics."""

    services: Services
    ledger: Ledger
    broker: KafkaBroker
    seen: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))

    async def send(self, value: bytes, topic: str = POLICE_NOTIFICATIONS) -> None:
        await self.broker.publish(value, topic)

    async def settle(self) -> int:
        """Run the outbox relay until it is empty (deliveries reach the inbox, acks come back)."""
        return await self.services.relay.drain()


def make_notification(
    *,
    urn: str | None = SCHOOL_URN,
    basis: dict[str, Any] | None = None,
    no_basis: bool = False,
    reference: str = "EXP/2026/1001",
    postcode: str | None = "ZZ99 1AA",
) -> Envelope:
    """An Encompass notification as the police adapter sends it (its lawful basis by default)."""
    occurred = NOW - timedelta(hours=9, minutes=20)
    lawful = (
        None if no_basis else basis or {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"}
    )
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "notification.encompass",
            "sender_org": "police:example",
            "sender_local_id": reference,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"},
            "lawful_basis": lawful,
            "payload": {
                "kind": "notification.encompass",
                "police_reference": reference,
                "force": "example",
                "occurred_at": occurred,
                "reported_at": occurred + timedelta(minutes=15),
                "child_present": "yes",
                "school_urn": urn,
                "home_postcode": postcode,
                "summary_for_school": "Officers attended; the child was present and unhurt.",
            },
        }
    )


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    """Keys and registry in the data dir the app is built on; police:example and the gate have keys."""
    keys = Keyring(tmp_path / "keys")
    keys.key("police:example")
    keys.gate()
    return keys


@pytest.fixture
def notification(keyring: Keyring) -> Callable[..., Envelope]:
    """``make_notification``, signed with police:example's key."""

    def signed(**kwargs: Any) -> Envelope:
        return keyring.sign(make_notification(**kwargs))

    return signed


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    settings = Settings(data_dir=tmp_path)
    ledger = await Ledger.open(settings.ledger_url)
    async with ledger.transaction() as tx:
        await tx.replace_directory([(SCHOOL_URN, "Example Primary", "999", [KEY_ADULT])], NOW)
    yield ledger
    await ledger.close()


@pytest.fixture
async def flow(tmp_path: Path, ledger: Ledger, keyring: Keyring) -> AsyncIterator[Flow]:
    settings = Settings(data_dir=tmp_path)
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(settings, ledger, broker, lambda: NOW)
    flow = Flow(services=services, ledger=ledger, broker=broker)

    for topic in CAPTURED:

        @broker.subscriber(topic, group_id=f"test-{topic}")
        async def capture(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            assert isinstance(raw, ConsumerRecord)  # one record per call: these are not batch subscribers
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in raw.headers}
            flow.seen[raw.topic].append(Record(raw.topic, raw.key, raw.value, headers))

    async with TestKafkaBroker(broker):
        yield flow
