"""Ports: what the core needs of the world outside it, as Protocols. Storage, Kafka and the app implement them.

The core (gate, consent, relay, clocks, audit, reports) types against these and never imports the
adapters: ``mash_broker.storage`` implements the unit of work and the ledger, the app wires them up.
Each area adds the Protocols it needs here, in its own section, with a one-line docstring each;
what a query returns is a frozen record from ``mash_broker.core.records``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from mash_broker.core.audit.log import Checkpoint, Entry
from mash_broker.core.records import (
    ClockRecord,
    DecidedMessage,
    DeliveryRecord,
    EventRecord,
    KeyAdult,
    MessageRecord,
    NotificationHead,
    OutboxRow,
    QuarantinedItem,
    QueueItem,
    Receipt,
    RecordedRequest,
    School,
    SenderStatusLine,
    VersionRecord,
)

# -- the unit of work and the ledger --------------------------------------------------------------


class Transaction(Protocol):
    """Writes (and reads) inside one ledger transaction: all of them land, or none."""

    async def event(self, event_type: str, message_id: uuid.UUID | str | None, at: datetime, **detail: Any) -> None:
        """Append an entry to the audited log."""
        ...

    async def enqueue(
        self,
        *,
        outbox_id: uuid.UUID,
        topic: str,
        key: str | None,
        value: str,
        headers: dict[str, str],
        at: datetime,
        not_before: datetime | None = None,
    ) -> None:
        """Queue a record for the relay to publish once the transaction commits."""
        ...

    async def known_school_urns(self) -> frozenset[str]:
        """Every school the directory knows."""
        ...

    async def message_hash(self, message_id: uuid.UUID) -> str | None:
        """A recorded message's content hash, or None if the ledger has no such message."""
        ...

    async def message_sender(self, message_id: uuid.UUID) -> tuple[str, str] | None:
        """A recorded message's kind and sender, or None."""
        ...


class UnitOfWork(Protocol):
    """Opens transactions: ``async with uow.transaction() as tx`` commits on leaving, rolls back on error."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction."""
        ...

    def reader(self) -> AbstractAsyncContextManager[Transaction]:
        """Read-only access through the same queries; nothing written there is kept."""
        ...


class LedgerReads(Protocol):
    """The queries over what the ledger recorded, each returning frozen records."""

    async def message(self, message_id: str) -> MessageRecord | None: ...
    async def find_message_id(self, prefix: str) -> str | None: ...
    async def decided_messages(
        self, *, received_from: datetime | None = None, received_to: datetime | None = None, kind: str | None = None
    ) -> list[DecidedMessage]: ...
    async def deliveries_of(self, message_id: str) -> list[DeliveryRecord]: ...
    async def deliveries_for(self, recipient: str) -> list[DeliveryRecord]: ...
    async def delivery(self, delivery_id: str) -> DeliveryRecord | None: ...
    async def all_deliveries(self) -> list[DeliveryRecord]: ...
    async def events_of(self, message_id: str) -> list[EventRecord]: ...
    async def events(self, event_type: str | None = None) -> list[EventRecord]: ...
    async def school(self, urn: str) -> School | None: ...
    async def key_adults(self, urn: str) -> list[KeyAdult]: ...
    async def known_school_urns(self) -> frozenset[str]: ...
    async def receipts_for(self, message_ids: Iterable[uuid.UUID]) -> dict[str, Receipt]: ...
    async def sender_status(self, sender_org: str | None = None) -> list[SenderStatusLine]: ...
    async def queue(self, queue: str | None = None, *, open_only: bool = True) -> list[QueueItem]: ...
    async def quarantined(self) -> list[QuarantinedItem]: ...
    async def pending_outbox(self, limit: int = 500, now: datetime | None = None) -> list[OutboxRow]: ...


class LedgerPort(UnitOfWork, LedgerReads, Protocol):
    """The ledger as the core sees it: a unit of work plus its queries."""


# -- the audited log ------------------------------------------------------------------------------


class AuditLog(Protocol):
    """The audited log's entries and signed checkpoints, read outside any transaction."""

    def log_entries(
        self,
        *,
        message_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        org: str | None = None,
        page: int = ...,
    ) -> AsyncIterator[list[Entry]]:
        """Entries in seq order, a page at a time: all, or about a message (id or prefix), a period, an org."""
        ...

    async def leaf_hashes_after(self, after_seq: int) -> list[tuple[int, str]]:
        """(seq, recorded leaf hash) of every entry after ``after_seq``."""
        ...

    async def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        ...

    async def latest_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint, if any."""
        ...


class AuditTransaction(Protocol):
    """What signing a checkpoint needs inside its transaction."""

    async def lock_event_log(self) -> None:
        """Hold back every other append (and checkpoint) until this transaction commits."""
        ...

    async def leaf_hashes_after(self, after_seq: int) -> list[tuple[int, str]]: ...
    async def latest_checkpoint(self) -> Checkpoint | None: ...
    async def add_checkpoint(
        self, *, tree_size: int, root_hash: str, at: datetime, key_id: str, signature: str
    ) -> int: ...


class AuditLedger(AuditLog, Protocol):
    """The audited log plus transactions that can sign a checkpoint."""

    def transaction(self) -> AbstractAsyncContextManager[AuditTransaction]: ...


# -- the front door's figures ---------------------------------------------------------------------


class LoggedEvent(Protocol):
    """An entry of the audited log: the ledger's (``EventRecord``) or a verified export's (``Entry``)."""

    @property
    def at(self) -> datetime: ...
    @property
    def event_type(self) -> str: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...


class EventSource(Protocol):
    """Where `mash report` computes its figures from: the audited log's entries, in order."""

    async def events(self, event_type: str | None = None) -> Sequence[LoggedEvent]: ...


# -- projections of the audited log (clocks, alerts): side effects follow the log, not the process ----


class ProjectionTransaction(Protocol):
    """What following the audited log needs inside one transaction: a guarded cursor and the entries after it."""

    async def claim_projection(self, name: str, *, new_from_end: bool = False) -> int:
        """Hold the projection until commit (another process's claim waits) and return its cursor."""
        ...

    async def events_after(self, seq: int, limit: int) -> list[EventRecord]:
        """The next ``limit`` entries after ``seq``, in order."""
        ...

    async def advance_projection(self, name: str, seq: int) -> None:
        """Every entry up to ``seq`` is applied: moves with the projection's own writes."""
        ...


TxT = TypeVar("TxT", bound=ProjectionTransaction)
TxT_co = TypeVar("TxT_co", bound=ProjectionTransaction, covariant=True)
TxT_contra = TypeVar("TxT_contra", contravariant=True)


class Projection(Protocol[TxT_contra]):
    """A side effect of the audited log (clocks, alerts), applied once per entry in the entry's order."""

    @property
    def name(self) -> str:
        """Its cursor's name in the ledger."""
        ...

    @property
    def writes(self) -> frozenset[str]:
        """Event types it appends itself: never fed back to it, so it cannot loop."""
        ...

    @property
    def replays_history(self) -> bool:
        """Whether, the first time it runs, it starts at the beginning of the log (else at its end)."""
        ...

    async def apply(self, tx: TxT_contra, event: EventRecord) -> None:
        """Apply one entry inside the transaction that moves the cursor past it."""
        ...


class ProjectedLedger(Protocol[TxT_co]):
    """A ledger a projector follows: transactions, and where a projection and the log stand (no lock)."""

    def transaction(self) -> AbstractAsyncContextManager[TxT_co]: ...
    async def projection_cursor(self, name: str) -> int | None: ...
    async def last_event_seq(self) -> int: ...


class ClockTransaction(Transaction, ProjectionTransaction, Protocol):
    """What the clocks write and read inside a transaction: their rows and what they need of their subjects."""

    async def start_clock(
        self,
        *,
        clock_id: uuid.UUID,
        name: str,
        subject_id: str,
        started_at: datetime,
        due_at: datetime,
        warn_at: datetime,
        escalate_to: str,
    ) -> bool:
        """Start a clock for a subject; False if that clock already exists."""
        ...

    async def stop_clock(self, clock_id: uuid.UUID, at: datetime) -> datetime | None:
        """Stop a running clock; its deadline, or None if it was not running."""
        ...

    async def clocks_to_flag(self, now: datetime) -> list[ClockRecord]:
        """Running clocks with a warning or breach due and not yet recorded."""
        ...

    async def flag_clock(self, clock_id: str, flag: str, at: datetime) -> bool:
        """Set ``warned_at`` or ``breached_at`` once; False if already set."""
        ...

    async def message_envelope(self, message_id: str) -> str | None: ...
    async def message_correlation(self, message_id: str) -> str | None: ...
    async def delivery_source(self, delivery_id: str) -> tuple[str, str] | None:
        """A delivery's source message id and recipient."""
        ...

    async def decision_areas(self, message_id: str) -> tuple[str, ...]:
        """In a region, the authorities a message was decided under (its ``decision.recorded``'s ``areas``)."""
        ...


class ClockReads(Protocol):
    """Where the clocks stand (`mash clocks list`, explain)."""

    async def clocks(self, *, subject_id: str | None = None) -> list[ClockRecord]:
        """Every clock (or a subject's), soonest deadline first."""
        ...


class ClockLedger(ProjectedLedger[ClockTransaction], ClockReads, Protocol):
    """The ledger as the clock keeper sees it."""

    def transaction(self) -> AbstractAsyncContextManager[ClockTransaction]: ...


# -- a recipient's inbox: system receipts and person reads ------------------------------------------


class InboxTransaction(Transaction, Protocol):
    """What recording a receipt or a read needs inside its transaction."""

    async def mark_delivered(self, delivery_id: uuid.UUID, at: datetime) -> bool:
        """Record a recipient system's receipt; False if it was already recorded."""
        ...

    async def mark_read(self, delivery_id: uuid.UUID, by: str, at: datetime) -> bool:
        """Record that a person read a delivery; False if it was already read."""
        ...


class InboxLedger(Protocol):
    """The ledger as a recipient's inbox sees it."""

    def transaction(self) -> AbstractAsyncContextManager[InboxTransaction]: ...
    async def message(self, message_id: str) -> MessageRecord | None: ...
    async def deliveries_for(self, recipient: str) -> list[DeliveryRecord]: ...
    async def key_adults(self, urn: str) -> list[KeyAdult]: ...


# -- the gate: a message, its decision, its shares, receipts and queues in one transaction ---------


class ConsentReads(Protocol):
    """The consent the ledger holds on a child, read inside a transaction."""

    async def consent_payloads(self, child_keys: Iterable[str], as_of: datetime | None = None) -> list[str]:
        """Consent and dispensation payloads (JSON) for any of these keys, in the order received."""
        ...


class ConsentTransaction(Transaction, ConsentReads, Protocol):
    """What recording consent needs, and stopping the queued shares a withdrawal no longer allows."""

    async def record_consent(
        self,
        *,
        message_id: uuid.UUID,
        child_keys: Iterable[str],
        record_kind: str,
        record_id: uuid.UUID,
        status: str,
        received_at: datetime,
        payload: str,
    ) -> None:
        """Store a consent record (or dispensation) against every key the child can be found by."""
        ...

    async def consent_deliveries(self, consent_id: uuid.UUID) -> list[DeliveryRecord]:
        """Deliveries that relied on this consent and have not been withdrawn."""
        ...

    async def cancel_unpublished(self, outbox_id: uuid.UUID, at: datetime) -> bool:
        """Stop an outbox record that has not been published yet; False if it already went."""
        ...

    async def mark_withdrawn(self, delivery_id: uuid.UUID, at: datetime) -> None: ...
    async def live_deliveries(self, message_id: uuid.UUID) -> int:
        """How many of a message's deliveries have not been withdrawn."""
        ...

    async def add_decision_reason(self, message_id: uuid.UUID, reason: str) -> None:
        """Append a reason to a decision that otherwise stands."""
        ...

    async def update_decision(self, message_id: uuid.UUID, *, verdict: str, reasons: list[str]) -> None: ...


# -- corrections and withdrawals of a notification (core/corrections.py, storage/corrections.py) ----


class CorrectionTransaction(ConsentTransaction, Protocol):
    """What the gate records when a notification is corrected or withdrawn, in the deciding transaction."""

    async def version_of(self, message_id: uuid.UUID) -> VersionRecord | None:
        """Where a recorded message stands among its notification's versions; None if it was not received."""
        ...

    async def record_version(
        self,
        *,
        message_id: uuid.UUID,
        supersedes: uuid.UUID,
        notification_id: str,
        version: int,
        change: str,
        at: datetime,
    ) -> None:
        """Record that ``message_id`` (a correction or a withdrawal) replaced ``supersedes``."""
        ...

    async def live_copies(self, message_id: uuid.UUID) -> list[DeliveryRecord]:
        """A message's deliveries not yet withdrawn."""
        ...

    async def record_withdrawn_copy(
        self,
        *,
        delivery_id: str,
        message_id: str,
        recipient: str,
        withdrawn_by: str,
        by_message_id: uuid.UUID,
        change: str,
        at: datetime,
        notice_id: uuid.UUID | None,
    ) -> None:
        """Record a copy withdrawn, with the notice its recipient was sent (None: it never went)."""
        ...

    async def resolve_queue_items(self, message_id: uuid.UUID, at: datetime) -> int:
        """Close a message's open queue items (nothing is left to route); how many were open."""
        ...


class WithdrawalNoticeTransaction(InboxTransaction, Protocol):
    """What a recipient's inbox records when a withdrawal notice reaches it."""

    async def record_notice_received(self, delivery_id: uuid.UUID, withdrawn_at: datetime, at: datetime) -> bool:
        """The notice for this withdrawn copy was received; False if already recorded (or not known)."""
        ...


class WithdrawalNoticeLedger(InboxLedger, Protocol):
    """A recipient's inbox that also records withdrawal notices."""

    def transaction(self) -> AbstractAsyncContextManager[WithdrawalNoticeTransaction]: ...


class NotificationVersions(Protocol):
    """A sender's view of its notifications' versions: what it compares a resend with."""

    async def notification_heads(self, notification_ids: Iterable[str]) -> dict[str, NotificationHead]:
        """The current version of each notification (by its first version's id) the ledger has received."""
        ...

    async def incident_notifications(
        self, sender_local_id: str, sender_org: str | None = None
    ) -> list[NotificationHead]:
        """The current version of each notification sent with this local id (a police incident reference)."""
        ...


class GateTransaction(CorrectionTransaction, Protocol):
    """What the gate records inside one transaction: the message, its decision, shares, queues, quarantine."""

    async def prefetch_messages(self, message_ids: Iterable[uuid.UUID]) -> None:
        """Read these messages' recorded hashes ahead, in one query (a batch's dedupe reads)."""
        ...

    async def insert_message(
        self,
        *,
        message_id: uuid.UUID,
        kind: str,
        sender_org: str,
        correlation_id: uuid.UUID,
        topic: str,
        content_hash: str,
        received_at: datetime,
        envelope: str,
        sender_local_id: str | None = None,
    ) -> None: ...
    async def insert_decision(
        self,
        *,
        message_id: uuid.UUID,
        verdict: str,
        reasons: list[str],
        policy_version: str,
        decided_at: datetime,
        refer_to: str | None,
        trace: list[str],
    ) -> None: ...
    async def insert_delivery(
        self,
        *,
        delivery_id: uuid.UUID,
        message_id: uuid.UUID,
        recipient: str,
        purpose: str,
        notify_by: datetime | None,
        created_at: datetime,
        envelope: str,
        consent_id: uuid.UUID | None = None,
    ) -> None: ...
    async def add_queue_item(
        self, *, queue: str, message_id: uuid.UUID, reason_code: str, detail: str, at: datetime
    ) -> None: ...
    async def add_quarantine(
        self,
        *,
        message_id: uuid.UUID | None,
        sender_org: str | None,
        topic: str,
        reason_code: str,
        detail: str,
        raw: str,
        at: datetime,
    ) -> None: ...
    async def outbox_has(self, outbox_id: uuid.UUID) -> bool:
        """Whether the outbox already holds this record (published or not)."""
        ...


class GateLedger(Protocol):
    """The ledger as the gate sees it: one transaction per inbound record."""

    def transaction(self) -> AbstractAsyncContextManager[GateTransaction]: ...


class PolicyTransaction(Transaction, Protocol):
    """Recording a policy version (and its exact text) before it is used."""

    async def record_policy(self, *, version: str, sha256: str, source: str, text: str, at: datetime) -> bool:
        """False if this version is already recorded with this content; PolicyError if with other content."""
        ...


class PolicyLedger(Protocol):
    """The ledger as loading a policy sees it."""

    def transaction(self) -> AbstractAsyncContextManager[PolicyTransaction]: ...


# -- the outbox: what the relay (and a replay) publishes once it is committed -----------------------


class OutboxLedger(Protocol):
    """The outbox as its publishers see it: claim what is due, read back what is unpublished, mark it sent."""

    async def claim_outbox(
        self,
        relay_id: str,
        now: datetime,
        limit: int = 500,
        reclaim_after: timedelta = ...,
        *,
        published: Sequence[int] = ...,
    ) -> list[OutboxRow]:
        """Take the due records for one relay to publish; a claimed record can no longer be withdrawn.
        ``published``: the relay's last batch, marked published in the same transaction."""
        ...

    async def unpublished(self, outbox_ids: Iterable[uuid.UUID]) -> list[OutboxRow]:
        """These records, if not yet published nor cancelled, in order."""
        ...

    async def mark_published(self, seqs: list[int], at: datetime) -> None: ...


# -- explain, what-if and replay: recorded decisions read back and decided again ------------------


class RecordedDecisions(ClockReads, Protocol):
    """The recorded messages, decisions, deliveries and entries, and a reader to decide them again in."""

    async def message(self, message_id: str) -> MessageRecord | None: ...
    async def find_message_id(self, prefix: str) -> str | None: ...
    async def decided_messages(
        self, *, received_from: datetime | None = None, received_to: datetime | None = None, kind: str | None = None
    ) -> list[DecidedMessage]: ...
    async def deliveries_of(self, message_id: str) -> list[DeliveryRecord]: ...
    async def events_of(self, message_id: str) -> list[EventRecord]: ...
    def reader(self) -> AbstractAsyncContextManager[ConsentTransaction]:
        """Read-only access to what the gate's pipeline reads (consent, directory); nothing written is kept."""
        ...


class ReplayLedger(RecordedDecisions, OutboxLedger, PolicyLedger, Protocol):
    """The ledger as `mash replay` sees it: decisions to re-decide, a transaction to record, an outbox."""


# -- an agency's own sends and answers -----------------------------------------------------------


class GateReceipts(Protocol):
    """The gate's receipts for messages an agency sent."""

    async def receipts_for(self, message_ids: Iterable[uuid.UUID]) -> dict[str, Receipt]: ...
    async def receipts_for_content(self, sent: Mapping[str, str]) -> dict[str, Receipt]:
        """The gate's answers for these messages (message id -> content hash) as sent: for a message id the
        ledger holds with other content, only the gate's refusal of this content (never the other's verdict)."""
        ...


class HealthTransaction(Transaction, Protocol):
    """What health's hooks read inside the gate's transaction: the request an answer names."""

    async def recorded_request(self, message_id: str, kind: str) -> RecordedRequest | None:
        """A received message of this kind with this id (the request an answer names), or None."""
        ...

    async def gp_report_recorded(self, request_id: str) -> bool:
        """Whether a GP report has already been recorded against this s47 request."""
        ...


class HealthLedger(Protocol):
    """The audited log as health's statuses read it."""

    async def events_of(self, message_id: str) -> list[EventRecord]: ...


# -- what an operator watches (metrics and probes; storage.metrics) --------------------------------


@dataclass(frozen=True, slots=True)
class LedgerFigures:
    """Counts from the ledger at one moment: labels are verdicts, reasons, topics, clock names and agencies,
    never an id or anything personal (the recipient of a delivery is folded into its agency)."""

    decisions: Mapping[tuple[str, str], int]  # (verdict, primary reason) -> decisions recorded
    quarantines: Mapping[str, int]  # reason -> records quarantined
    outbox_depth: Mapping[str, int]  # topic -> records not yet published (held ones too), not cancelled
    outbox_oldest: Mapping[str, datetime]  # topic -> when its oldest due, unpublished record became due
    clock_warnings: Mapping[str, int]  # clock name -> clocks that reached their warning
    clock_breaches: Mapping[str, int]  # clock name -> clocks that breached
    unacknowledged: Mapping[str, int]  # recipient agency -> deliveries its system has not acknowledged
    unread: Mapping[str, int]  # recipient agency -> deliveries received but not yet read by a person


class ObservedLedger(Protocol):
    """The cheap reads behind /readyz and /metrics."""

    async def ledger_answers(self) -> bool:
        """A trivial read succeeded."""
        ...

    async def figures(self, now: datetime) -> LedgerFigures: ...

    async def published_since(self, since: datetime, limit: int = 10_000) -> list[tuple[datetime, datetime]]:
        """(due, published) of outbox records published after ``since``, oldest publication first."""
        ...

    async def outbox_headers(self, outbox_id: uuid.UUID) -> dict[str, str] | None:
        """The Kafka headers an outbox record was queued with (a trace context among them), or None."""
        ...
