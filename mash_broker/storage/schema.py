"""Ledger tables. The ledger is the durable record; Kafka is the transport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class JsonText(TypeDecorator[str]):
    """A JSON column's value already serialised: written exactly as given (the audited log stores each entry's
    detail as its RFC 8785 text, so verify hashes what is stored), read back as JSON like any other."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:  # the text is the value: no processing
        return None


metadata = MetaData()
Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

messages = Table(
    "messages",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("sender_org", String(80), nullable=False),
    Column("sender_local_id", String(128)),
    Column("correlation_id", String(36), nullable=False, index=True),
    Column("topic", String(120), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("envelope", Text, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("verdict", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("decided_at", UtcDateTime, nullable=False),
    Column("refer_to", String(40)),
    Column("trace", JSON, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(36), primary_key=True),
    Column("message_id", String(36), nullable=False, index=True),
    Column("recipient", String(80), nullable=False, index=True),
    Column("purpose", String(64), nullable=False),
    Column("notify_by", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    Column("read_at", UtcDateTime),
    Column("read_by", String(100)),
    Column("consent_id", String(36), index=True),  # the consent this share relied on, if any
    Column("withdrawn_at", UtcDateTime),  # consent withdrawn before it was published: never sent
    Column("envelope", Text, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", String(36), nullable=False, unique=True),
    Column("topic", String(120), nullable=False),
    Column("key", String(80)),
    Column("value", Text, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("not_before", UtcDateTime),  # held until then (a consent-based share's settle window)
    Column("cancelled_at", UtcDateTime),  # never to be published (consent withdrawn meanwhile)
    # Taken by a relay about to publish it: from then on it can no longer be cancelled, so the
    # ledger never says "withdrawn" about a record that went out.
    Column("claimed_at", UtcDateTime),
    Column("claimed_by", String(36)),
    Column("published_at", UtcDateTime, index=True),
)

queue_items = Table(
    "queue_items",
    metadata,
    Column("item_id", Id, primary_key=True, autoincrement=True),
    Column("queue", String(40), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    UniqueConstraint("queue", "message_id"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("item_id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(36)),
    Column("sender_org", String(80)),
    Column("topic", String(120), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

schools = Table(
    "schools",
    metadata,
    Column("urn", String(6), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("la_code", String(3), nullable=False),
    Column("loaded_at", UtcDateTime, nullable=False),
)

key_adults = Table(
    "key_adults",
    metadata,
    Column("urn", String(6), primary_key=True),
    Column("email", String(254), primary_key=True),
    Column("name", String(100), nullable=False),
)

# Consent records and dispensations, one row per key the child can be found by.
consents = Table(
    "consents",
    metadata,
    Column("row_id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, index=True),
    Column("child_key", String(80), nullable=False, index=True),
    Column("record_kind", String(32), nullable=False),
    Column("record_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("message_id", "child_key"),
)

# Every sharing policy the gate has run under (a new version is recorded before it is used).
policies = Table(
    "policies",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("loaded_at", UtcDateTime, nullable=False),
    Column("source", String(255), nullable=False),
    Column("text", Text, nullable=False),
)

# Declared clocks (mash_broker/defaults/clocks.toml) running for a subject; one row per clock and subject, so a
# redelivered start never doubles it. warned_at / breached_at are set once, with their events.
clocks = Table(
    "clocks",
    metadata,
    Column("clock_id", String(36), primary_key=True),  # deterministic from name and subject
    Column("name", String(64), nullable=False),
    Column("subject_id", String(36), nullable=False, index=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("warn_at", UtcDateTime, nullable=False),
    Column("escalate_to", String(80), nullable=False),
    Column("stopped_at", UtcDateTime),
    Column("warned_at", UtcDateTime),
    Column("breached_at", UtcDateTime),
    UniqueConstraint("name", "subject_id"),
)

# Every ledger event, in order: the audited log (issue 4 builds the Merkle tree over it).
events = Table(
    "events",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("message_id", String(36), index=True),
    # The detail's RFC 8785 text (written through JsonText): joined with at, event_type and message_id it is the
    # entry's canonical bytes (core.audit.entries.joined_entry). Rows written before then hold json.dumps text.
    Column("detail", JSON, nullable=False),
    # RFC 6962 leaf hash (hex) of the entry's canonical bytes, computed when it is written (broker.audit.entries).
    Column("leaf_hash", String(64), nullable=False),
)

# Signed tree heads over ``events`` (tree size = events seq 1..tree_size), newest last.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("checkpoint_id", Id, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(100), nullable=False),
)

# Web sign-in accounts: a school's Key Adult (login = their directory email) or a MASH manager.
# Only an Argon2id hash of the password is kept.
web_accounts = Table(
    "web_accounts",
    metadata,
    Column("login", String(254), primary_key=True),  # casefolded
    # key_adult | mash | mash:<code> (one authority's manager) | police:<force> (a force's own view)
    Column("role", String(80), nullable=False),
    Column("urn", String(6)),  # a Key Adult's school
    Column("name", String(100), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Content-free alerts waiting to go out (email to a Key Adult, or a webhook call): queued in the
# transaction that records the delivery, sent and retried by broker.alerts, never by the gate.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(36), primary_key=True),  # deterministic from delivery, channel and address
    Column("delivery_id", String(36), nullable=False, index=True),
    Column("channel", String(16), nullable=False),  # email | webhook
    Column("address", String(500), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False, index=True),
    Column("sent_at", UtcDateTime),
    Column("last_error", String(200)),
)

# Where each projection of the audited log stands (storage.projections): the seq of the last event it
# applied, advanced in the same transaction as the projection's own writes, so each event is applied
# exactly once, whichever process wrote it and however often the stack restarts.
projections = Table(
    "projections",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

# Corrections and withdrawals (storage/corrections.py, core/corrections.py). One row per version that
# replaced another: a correction (``corrected``, a new version with content) or a withdrawal (``withdrawn``,
# the withdrawal message, no content). ``supersedes`` is unique: a version is replaced at most once.
notification_versions = Table(
    "notification_versions",
    metadata,
    Column("message_id", String(36), primary_key=True),  # the correction or the withdrawal
    Column("supersedes", String(36), nullable=False, unique=True),
    Column("notification_id", String(36), nullable=False, index=True),  # the first version's message id
    Column("version", Integer, nullable=False),  # the first version is 1
    Column("change", String(16), nullable=False),  # corrected | withdrawn
    Column("recorded_at", UtcDateTime, nullable=False),
)

# Each copy withdrawn because its notification was corrected or withdrawn: cancelled before it went
# (no notice) or sent a content-free delivery.withdrawn notice, whose receipt the recipient's inbox records.
withdrawn_copies = Table(
    "withdrawn_copies",
    metadata,
    Column("delivery_id", String(36), primary_key=True),
    Column("message_id", String(36), nullable=False, index=True),  # the version withdrawn
    Column("recipient", String(80), nullable=False, index=True),
    Column("withdrawn_by", String(80), nullable=False),  # the sender of the correction or withdrawal
    Column("by_message_id", String(36), nullable=False),
    Column("change", String(16), nullable=False),  # corrected | withdrawn
    Column("withdrawn_at", UtcDateTime, nullable=False),
    Column("notice_id", String(36)),  # None: cancelled before it was published
    Column("notice_received_at", UtcDateTime),
)
