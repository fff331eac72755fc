"""What the ledger gives back: frozen, typed records, one per kind of row a query returns. Pure.

Storage builds these from its tables; core, the app and the tests read their fields by name
(``delivery.read_at``), never by key. JSON columns come back as tuples (reasons, trace) or as a
plain mapping (an event's detail, an outbox record's headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A received message and, once decided, the gate's decision."""

    message_id: str
    kind: str
    sender_org: str
    sender_local_id: str | None
    correlation_id: str
    topic: str
    content_hash: str
    received_at: datetime
    envelope: str
    verdict: str | None
    reasons: tuple[str, ...] | None
    trace: tuple[str, ...] | None
    policy_version: str | None
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class DecidedMessage:
    """A decided message with its envelope, for what-if and replay."""

    message_id: str
    kind: str
    envelope: str
    received_at: datetime
    verdict: str
    reasons: tuple[str, ...]
    decided_at: datetime
    policy_version: str


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One share to one recipient: when it was due, delivered, read, or withdrawn."""

    delivery_id: str
    message_id: str
    recipient: str
    purpose: str
    notify_by: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None
    read_by: str | None
    consent_id: str | None
    withdrawn_at: datetime | None
    envelope: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An entry of the audited log: its position, time, type, message and detail (as stored)."""

    seq: int
    at: datetime
    event_type: str
    message_id: str | None
    detail: dict[str, Any]
    leaf_hash: str


@dataclass(frozen=True, slots=True)
class School:
    """A school in the directory."""

    urn: str
    name: str
    la_code: str
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class KeyAdult:
    """A school's Key Adult (designated safeguarding lead or deputy), as the directory lists them."""

    urn: str
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """The gate's receipt for a message: its verdict (``rejected`` if quarantined), reasons, referral."""

    message_id: str
    verdict: str | None
    reasons: tuple[str, ...] | None
    refer_to: str | None


@dataclass(frozen=True, slots=True)
class SenderStatusLine:
    """One message a sender sent and one of its recipients (None if nothing was shared)."""

    message_id: str
    sender_org: str
    sender_local_id: str | None
    received_at: datetime
    verdict: str | None
    reasons: tuple[str, ...] | None
    recipient: str | None
    notify_by: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    read_by: str | None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A message waiting for a person (advice, key adult missing, ...)."""

    item_id: int
    queue: str
    message_id: str
    reason_code: str
    detail: str
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class QuarantinedItem:
    """A record refused before it was recorded, with the reason and the raw bytes (as text)."""

    item_id: int
    message_id: str | None
    sender_org: str | None
    topic: str
    reason_code: str
    detail: str
    raw: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClockRecord:
    """A declared clock running (or stopped) for a subject."""

    clock_id: str
    name: str
    subject_id: str
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    escalate_to: str
    stopped_at: datetime | None
    warned_at: datetime | None
    breached_at: datetime | None

    @property
    def state(self) -> ClockState:
        """Where it stands, most advanced first: stopped beats breached beats warned."""
        if self.stopped_at is not None:
            return ClockState.STOPPED
        if self.breached_at is not None:
            return ClockState.BREACHED
        if self.warned_at is not None:
            return ClockState.WARNED
        return ClockState.RUNNING


class ClockState(StrEnum):
    """A declared clock's state."""

    RUNNING = "running"
    WARNED = "warned"
    BREACHED = "breached"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """A content-free alert waiting to go out (an email to a Key Adult, or a webhook call)."""

    alert_id: str
    delivery_id: str
    channel: str
    address: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One record waiting to be published by the relay."""

    seq: int
    outbox_id: str
    topic: str
    key: str | None
    value: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class WebAccountRecord:
    """A web sign-in account as stored: only an Argon2id hash of the password is kept."""

    login: str
    role: str
    urn: str | None
    name: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A received request that an answer names (an s47 information request, a health assessment request)."""

    message_id: str
    kind: str
    envelope: str


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """Where a recorded message stands among its notification's versions (``core.corrections``)."""

    message_id: str
    kind: str
    sender_org: str
    notification_id: str  # the first version's message id
    version: int  # the first version is 1
    replaced_by: str | None  # the correction or withdrawal that replaced it, if any


@dataclass(frozen=True, slots=True)
class NotificationHead:
    """A notification's current version: the last one with content and, if withdrawn since, by what."""

    notification_id: str
    message_id: str  # the head of the chain: the current version, or the withdrawal that ended it
    version: int
    content_message_id: str  # the last version with content (the head itself unless withdrawn)
    envelope: str  # that version's stored envelope
    withdrawn: bool
    sender_local_id: str | None = None
    # The envelopes of the versions it replaced (oldest first): a row that says what one of them said is an
    # old export sent again, not a correction back to old content.
    earlier_envelopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WithdrawnCopy:
    """A copy withdrawn because its notification was corrected or withdrawn (``withdrawn_copies``)."""

    delivery_id: str
    message_id: str
    recipient: str
    withdrawn_by: str
    by_message_id: str
    change: str  # corrected | withdrawn
    withdrawn_at: datetime
    notice_id: str | None  # None: cancelled before it was published
    notice_received_at: datetime | None
