"""The bad-input corpus's shared pieces: the synthetic values that must never be quoted, a log buffer
every case writes into, and the real app on an in-memory broker (as tests/flows) for raw records.

Every personal value here is invented. ``MARKERS`` are the distinctive ones a bad record carries: a
case passes only if none of them appears in the answer it gets or in anything the stack logged.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from signing_helpers import Keyring

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app import commands
from mash_broker.app.bootstrap import Services, build_broker, build_services
from mash_broker.contracts import Envelope, topics
from mash_broker.core.intake import DEAD_LETTERS
from mash_broker.core.logging import configure_logging
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "mash_broker" / "demo" / "data"
NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)  # a Tuesday in term, before the 10:00 deadline

# Invented, and unlike any word the code or its messages use: found anywhere, it was quoted.
GIVEN, FAMILY, DOB = "Xanthippe", "Corpuscase", "2016-04-29"
POSTCODE = "ZZ97 3QX"
MARKERS = (GIVEN, FAMILY, DOB, POSTCODE, "Quorblewick", "Snargleby")


def assert_unquoted(*texts: object, markers: Iterable[str] = MARKERS) -> None:
    """None of ``markers`` (case-insensitive) in any of ``texts``; the failure names the marker only."""
    blob = "\n".join(str(t) for t in texts).casefold()
    found = [m for m in markers if m.casefold() in blob]
    assert not found, f"a synthetic value was quoted: {found}"


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    """Everything the code under test logs, as `mash up` renders it (JSON lines); checked by cases."""
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    yield out
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_mash", False)]:
        root.removeHandler(handler)


# -- the app on an in-memory broker (raw records) ---------------------------------------------------

CHILD = {"given_name": GIVEN, "family_name": FAMILY, "date_of_birth": DOB}
S47 = {"article6": "public_task", "statutory_power": "children_act_1989_s47"}
ENCOMPASS = {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"}
# A sender whose contacts arrive on each inbound topic (REGISTRY.inbound_topic), for a valid neighbour.
SENDER_ON = {
    "police.notification.v1": "police:example",
    "education.inbound.v1": "school:900001",
    "health.inbound.v1": "health:gp-corpus",
    "mash.inbound.v1": "probation:corpus",
    "consent.record.v1": "la:999",
}


def notification_doc(*, urn: str = "900001", reference: str | None = None) -> dict[str, Any]:
    """An Encompass notification as JSON-ready data (the police adapter's shape), unsigned."""
    occurred = NOW - timedelta(hours=9, minutes=20)
    reference = reference or f"COR/2026/{uuid.uuid4().hex[:6]}"
    return {
        "message_id": str(uuid.uuid4()), "kind": "notification.encompass", "sender_org": "police:example",
        "sender_local_id": reference, "correlation_id": str(uuid.uuid4()), "produced_at": NOW.isoformat(),
        "subject": dict(CHILD), "lawful_basis": dict(ENCOMPASS),
        "payload": {"kind": "notification.encompass", "police_reference": reference, "force": "example",
                    "occurred_at": occurred.isoformat(), "reported_at": (occurred + timedelta(minutes=15)).isoformat(),
                    "child_present": "yes", "school_urn": urn, "home_postcode": POSTCODE,
                    "summary_for_school": "Officers attended; Quorblewick Snargleby was present."},
    }  # fmt: skip


def contact_doc(sender: str) -> dict[str, Any]:
    """A contact to the hub from ``sender``, as JSON-ready data, unsigned."""
    return {
        "message_id": str(uuid.uuid4()), "kind": "contact", "sender_org": sender,
        "correlation_id": str(uuid.uuid4()), "produced_at": NOW.isoformat(), "subject": dict(CHILD),
        "lawful_basis": dict(S47), "recipients": ["mash:hub"],
        "payload": {"kind": "contact", "referrer_name": "Referrer Example", "referrer_role": "Officer",
                    "what_happened": "Synthetic incident at Quorblewick.", "worried_about": "Synthetic worry.",
                    "consent_sought": False},
    }  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One record a test subscriber saw on an outbound topic."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Mark:
    """How far the ledger and the captured topics had got at one moment."""

    quarantine_item: int
    messages: int
    seen: dict[str, int]


@dataclass
class Flow:
    """The app under test, its in-memory broker and what reached the outbound and dead-letter topics."""

    services: Services
    ledger: Ledger
    broker: KafkaBroker
    keyring: Keyring
    data_dir: Path
    seen: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))

    def mark(self) -> Mark:
        """Where the ledger and the captured topics stand now, to look at only what comes after."""
        with sqlite3.connect(self.data_dir / "ledger.sqlite3") as conn:
            [(item,)] = conn.execute("SELECT coalesce(max(item_id), 0) FROM quarantine")
            [(messages,)] = conn.execute("SELECT count(*) FROM messages")
        return Mark(item, messages, {t: len(rs) for t, rs in self.seen.items()})

    def quarantined_since(self, mark: Mark) -> list[tuple[str | None, str | None, str, str, str]]:
        """``(message_id, sender_org, topic, reason_code, detail)`` of each record quarantined since ``mark``."""
        with sqlite3.connect(self.data_dir / "ledger.sqlite3") as conn:
            query = "SELECT message_id, sender_org, topic, reason_code, detail FROM quarantine WHERE item_id > ?"
            return list(conn.execute(query, (mark.quarantine_item,)))

    def messages_since(self, mark: Mark) -> int:
        with sqlite3.connect(self.data_dir / "ledger.sqlite3") as conn:
            [(messages,)] = conn.execute("SELECT count(*) FROM messages")
        return int(messages) - mark.messages

    def seen_since(self, mark: Mark, topic: str) -> list[Record]:
        return self.seen[topic][mark.seen.get(topic, 0) :]

    async def send(self, value: bytes, topic: str) -> None:
        await self.broker.publish(value, topic)
        await self.services.relay.drain()

    def signed(self, doc: dict[str, Any]) -> bytes:
        """``doc`` as its sender would put it on the wire: validated and signed with the sender's key."""
        return self.keyring.sign(Envelope.model_validate(doc)).model_dump_json().encode()


CAPTURED = (DEAD_LETTERS, topics.GATE_QUARANTINE, *REGISTRY.outbound_topics)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def flow(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Flow]:
    """The real app on TestKafkaBroker over a SQLite ledger holding the demo's schools; the senders of
    ``SENDER_ON`` and the gate have keys. One per module (a module's tests run on its event loop):
    each case looks at what its own records did (``Flow.mark``), not at totals."""
    tmp_path = tmp_path_factory.mktemp("corpus-flow")
    settings = Settings(data_dir=tmp_path)
    keyring = Keyring(tmp_path / "keys")
    for org in (*SENDER_ON.values(), "mash:gate"):
        keyring.key(org)
    ledger = await Ledger.open(settings.ledger_url)
    await commands.load_schools(ledger, DEMO / "schools.csv", NOW)
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(settings, ledger, broker, lambda: NOW)
    flow = Flow(services=services, ledger=ledger, broker=broker, keyring=keyring, data_dir=tmp_path)
    for topic in CAPTURED:

        @broker.subscriber(topic, group_id=f"corpus-{topic}")
        async def capture(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            assert isinstance(raw, ConsumerRecord)
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in raw.headers}
            flow.seen[raw.topic].append(Record(raw.topic, raw.key, raw.value, headers))

    try:
        async with TestKafkaBroker(broker):
            yield flow
    finally:
        await ledger.close()
