"""The gate's I/O around the pure decision: parse, decide, record in one transaction, queue outbound."""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from pydantic import ValidationError

from mash_broker.consent_gate import REASON_TEXT, RECORD_ONLY_KINDS, Decision, Policy, Reason, Verdict
from mash_broker.consent_gate.outcomes import from_the_mash
from mash_broker.contracts import (
    Envelope,
    Quarantined,
    ReceiptStatus,
    SystemReceipt,
    deterministic_id,
    topics,
)
from mash_broker.contracts.payloads import Outcome
from mash_broker.contracts.quality import CONTACT_INCOMPLETE, Missing, contact_quality, quality_detail
from mash_broker.core import corrections
from mash_broker.core.agency import Timing
from mash_broker.core.areas import Region, area_of_queue
from mash_broker.core.audit.copies import stored_sha256
from mash_broker.core.clocks import SchoolCalendar
from mash_broker.core.consent_service import record_consent
from mash_broker.core.intake import Unreadable, read_envelope
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import (
    GATE_ORG,
    MAX_MESSAGE_BYTES,
    content_hash,
    delivery_envelope,
    encode,
    headers_for,
    outbox_id,
    peek,
    reply,
)
from mash_broker.core.pipeline import Inputs, decide_message, inputs_for
from mash_broker.core.ports import GateLedger, GateTransaction
from mash_broker.core.registry import Registry
from mash_broker.core.signing import Signer, Verifier, sign

log = get_logger("mash.gate")

RECEIPT_STATUS = {
    Verdict.SHARE: ReceiptStatus.ACCEPTED,
    Verdict.REFER: ReceiptStatus.REFERRED,
    Verdict.WITHHOLD: ReceiptStatus.QUARANTINED,
}
# An unknown key in a malformed record is input: named in a detail only if it looks like a field name.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass
class GateContext:
    """What the gate's handler needs; built once by the composition root."""

    ledger: GateLedger
    policy: Policy
    calendar: SchoolCalendar
    notify_by: time
    school_day_starts: time
    clock: Callable[[], datetime]
    registry: Registry  # the agencies: their routing, pre-checks, deadlines, topics and hooks
    # A share that rests on consent waits this long before it is published, so a withdrawal
    # already on its way stops it (DOMAIN rule 6: sharing stops from the withdrawal on).
    consent_settle: timedelta = timedelta(seconds=3)
    # Checks inbound signatures (None: not checked, e.g. a test about something else) and signs
    # what the gate publishes as mash:gate (None: unsigned).
    verifier: Verifier | None = None
    signer: Signer | None = None
    # The agencies' directories from configuration, by agency name (``Registry.load_directories``), e.g.
    # the health teams a domestic abuse notification is also routed to; the ledger's are read per message.
    directories: Mapping[str, Any] = field(default_factory=dict)
    # A region of several local authorities (``core.areas``); None: one area, as before.
    region: Region | None = None

    @property
    def timing(self) -> Timing:
        return Timing(self.calendar, self.notify_by, self.school_day_starts)

    def timing_for(self, area: str | None) -> Timing:
        """The calendar and times of authority ``area`` (a release's, in a region); else the deployment's."""
        return self.region.timing(area, self.timing) if self.region is not None else self.timing


def contract_problems(err: ValidationError) -> str:
    """Field paths and reasons only: never the input values, which may be personal data."""
    parts = [f"{'.'.join(_loc_part(p) for p in e['loc']) or '(message)'}: {e['msg']}" for e in err.errors()]
    return "; ".join(parts)[:2000]


def _loc_part(part: str | int) -> str:
    return str(part) if isinstance(part, int) or _FIELD_NAME.fullmatch(part) else "<key>"


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one inbound record, and the line to log once its transaction has committed."""

    outcome: str  # a verdict, ``duplicate``, ``rejected``, ...
    level: str
    event: str
    fields: dict[str, Any]

    def log(self) -> None:
        getattr(log, self.level)(self.event, **self.fields)


# Entered around each record of a batch (the app binds its log context and continues its trace there).
Around = Callable[[int], AbstractContextManager[Any]]


async def process_inbound(ctx: GateContext, raw: bytes, topic: str) -> str:
    """Handle one inbound record in a transaction of its own. Returns what happened: a verdict,
    ``duplicate`` or ``rejected``."""
    async with ctx.ledger.transaction() as tx:
        handled = await handle_inbound(ctx, tx, raw, topic)
    handled.log()
    return handled.outcome


async def process_batch(
    ctx: GateContext, records: Sequence[tuple[bytes, str]], *, around: Around | None = None
) -> list[str]:
    """Handle ``records`` (raw value, topic), in order, in ONE transaction: all of them are recorded, or
    (if any raises) none. A later record sees what an earlier one wrote (the same message id twice is a
    duplicate, a correction finds the version it corrects). Returns each record's outcome."""
    done: list[Handled] = []
    # Read and verify every record first (CPU only): the write transaction is held for the recording alone.
    screened = []
    for i, (raw, topic) in enumerate(records):
        with around(i) if around is not None else contextlib.nullcontext():
            screened.append(screen(ctx, raw, topic))
    async with ctx.ledger.transaction() as tx:
        await tx.prefetch_messages(s.message.message_id for s in screened if s.message is not None)  # dedupe reads
        for i, (raw, topic) in enumerate(records):
            with around(i) if around is not None else contextlib.nullcontext():
                done.append(await record_screened(ctx, tx, screened[i], raw, topic))
    for handled in done:  # after the commit: a rolled-back batch logs nothing (it is handled again)
        handled.log()
    return [h.outcome for h in done]


@dataclass(frozen=True, slots=True)
class Screened:
    """A record read and its signature checked, before any transaction: the envelope, or why it is refused."""

    now: datetime
    message: Envelope | None  # None: unreadable (``unreadable``)
    unreadable: Unreadable | None = None
    signature: tuple[str, str] | None = None  # (reason, detail) when a required signature does not verify


def screen(ctx: GateContext, raw: bytes, topic: str) -> Screened:
    """Read ``raw`` (size, nesting, UTF-8, JSON with each key once, the contract) and check its signature."""
    now = ctx.clock()
    message = read_envelope(raw)
    if isinstance(message, Unreadable):
        return Screened(now, None, unreadable=message)
    if message.sender_org != GATE_ORG and ctx.verifier is not None:
        return Screened(now, message, signature=_signature_problem(ctx, message, topic, now))
    return Screened(now, message)


async def handle_inbound(ctx: GateContext, tx: GateTransaction, raw: bytes, topic: str) -> Handled:
    """Decide one inbound record and record what happened in ``tx``, the caller's open transaction."""
    return await record_screened(ctx, tx, screen(ctx, raw, topic), raw, topic)


async def record_screened(ctx: GateContext, tx: GateTransaction, screened: Screened, raw: bytes, topic: str) -> Handled:
    """Decide a screened record and record what happened in ``tx``."""
    now, message = screened.now, screened.message
    if message is None:
        assert screened.unreadable is not None
        return await _reject(ctx, tx, raw, topic, now, screened.unreadable.reason, screened.unreadable.detail)
    if message.sender_org == GATE_ORG:
        return await _refuse_as_gate(tx, message, raw, topic, now)
    if screened.signature is not None:  # before dedupe: a forged copy of a real message id is refused
        return await _reject(ctx, tx, raw, topic, now, *screened.signature)
    digest = content_hash(message)
    existing = await tx.message_hash(message.message_id)
    if existing == digest:
        outcome = "duplicate"
    elif existing is not None:
        outcome = "rejected"
        if await _quarantine(
            tx,
            message.message_id,
            message.sender_org,
            topic,
            raw,
            now,
            corrections.REUSED,
            "message_id: a different message already has this message id (a correction needs a new one)",
            record=digest,
        ):
            await _receipt(ctx, tx, message, ReceiptStatus.REJECTED, now, "message_id_reused", salt=f"reused:{digest}")
        else:
            outcome = "duplicate"  # this conflicting message again: already quarantined
    elif corrections.replaced(message) is not None:  # a correction or a withdrawal (core/corrections.py)
        outcome = await _revise(ctx, tx, message, topic, digest, now)
    elif message.kind in RECORD_ONLY_KINDS:
        await _record_message(tx, message, topic, digest, now)
        outcome = await record_consent(tx, message, now, delivery_topic=ctx.registry.delivery_topic)
        await tx.insert_decision(
            message_id=message.message_id,
            verdict="recorded",
            reasons=["consent_recorded"],
            policy_version=ctx.policy.version,
            decided_at=now,
            refer_to=None,
            trace=[f"consent record: {outcome}"],
        )
        await _receipt(ctx, tx, message, ReceiptStatus.ACCEPTED, now, "consent_recorded")
    elif isinstance(message.payload, Outcome):
        outcome = await _outcome(ctx, tx, message, message.payload, topic, digest, now)
    elif (problem := await ctx.registry.answer_problem(tx, message)) is not None:
        outcome = await _refuse(ctx, tx, message, topic, digest, now, "answer_unmatched", ": ".join(problem))
    else:
        decision = decide_message(message, await _inputs(ctx, tx, message, now))
        await _record(ctx, tx, message, topic, digest, decision, now)
        outcome = decision.verdict.value
    fields = {
        "message_id": str(message.message_id),
        "correlation_id": str(message.correlation_id),
        "agency": message.sender_org,
        "topic": topic,
        "kind": message.kind,
        "outcome": outcome,
    }
    return Handled(outcome, "info", "message.decided", fields)


async def _outcome(
    ctx: GateContext, tx: GateTransaction, message: Envelope, payload: Outcome, topic: str, digest: str, now: datetime
) -> str:
    """The MASH's decision on a contact: decided for its referrer (and any recipients it names)."""
    if not from_the_mash(message):
        return await _refuse(
            ctx,
            tx,
            message,
            topic,
            digest,
            now,
            "outcome_not_from_mash",
            "sender_org: only the MASH (la:<code> or mash:<hub>) records outcomes on contacts",
        )
    contact = await tx.message_sender(payload.contact_message_id)
    if contact is None or contact[0] != "contact":
        return await _refuse(
            ctx,
            tx,
            message,
            topic,
            digest,
            now,
            "contact_unknown",
            "payload.contact_message_id: no contact with this message id has been received",
        )
    decision = decide_message(message, await _inputs(ctx, tx, message, now))
    await _record(ctx, tx, message, topic, digest, decision, now)
    return decision.verdict.value


async def _revise(
    ctx: GateContext, tx: GateTransaction, message: Envelope, topic: str, digest: str, now: datetime
) -> str:
    """A correction or a withdrawal: the old version's copies withdrawn; a correction then decided as any
    notification is, in this transaction; the sender told ``corrected`` or ``withdrawn``."""
    target = await corrections.target_of(tx, message)
    if isinstance(target, corrections.Refusal):
        return await _refuse(ctx, tx, message, topic, digest, now, target.reason, target.detail)
    change = corrections.change_of(message)
    if change == corrections.CORRECTED:
        await _record_message(tx, message, topic, digest, now)  # the new version, before the old is withdrawn
    done = await corrections.withdraw_copies(
        tx, target, message, now, delivery_topic=ctx.registry.delivery_topic, sign=lambda env: _signed(ctx, env)
    )
    detail = done.detail(change, target.message_id)
    if change == corrections.CORRECTED:
        decision = decide_message(message, await _inputs(ctx, tx, message, now))
        await _decide(ctx, tx, message, topic, digest, decision, now, status=ReceiptStatus.CORRECTED, detail=detail)
        return change if decision.verdict is not Verdict.WITHHOLD else decision.verdict.value
    await _record_message(tx, message, topic, digest, now)
    reason = corrections.REASONS[change]
    await tx.insert_decision(
        message_id=message.message_id,
        verdict="recorded",
        reasons=[reason],
        policy_version=ctx.policy.version,
        decided_at=now,
        refer_to=None,
        trace=[detail],
    )
    await _receipt(ctx, tx, message, ReceiptStatus.WITHDRAWN, now, reason, detail=detail)
    return change


async def _inputs(ctx: GateContext, tx: GateTransaction, message: Envelope, now: datetime) -> Inputs:
    return await inputs_for(
        tx, message, policy=ctx.policy, now=now, registry=ctx.registry, directories=ctx.directories, region=ctx.region
    )


async def _refuse(
    ctx: GateContext,
    tx: GateTransaction,
    message: Envelope,
    topic: str,
    digest: str,
    now: datetime,
    reason: str,
    detail: str,
) -> str:
    """A valid message the gate cannot act on: quarantined, its sender told the field and the reason. Not
    recorded as received, so the same message sent again once it can be acted on is decided afresh."""
    if not await _quarantine(
        tx, message.message_id, message.sender_org, topic, encode(message), now, reason, detail, record=digest
    ):
        return "duplicate"
    await _receipt(ctx, tx, message, ReceiptStatus.REJECTED, now, reason, salt=f"refused:{digest}", detail=detail)
    return "rejected"


async def _record_message(tx: GateTransaction, message: Envelope, topic: str, digest: str, now: datetime) -> None:
    await tx.insert_message(
        message_id=message.message_id,
        kind=message.kind,
        sender_org=message.sender_org,
        correlation_id=message.correlation_id,
        topic=topic,
        content_hash=digest,
        received_at=now,
        envelope=encode(message),
        sender_local_id=message.sender_local_id,
    )
    await tx.event(
        "message.received",
        message.message_id,
        now,
        kind=message.kind,
        sender_org=message.sender_org,
        topic=topic,
        content_hash=digest,
        envelope_sha256=stored_sha256(encode(message)),  # the stored copy, checked by `mash audit verify`
    )


async def _record(
    ctx: GateContext, tx: GateTransaction, message: Envelope, topic: str, digest: str, decision: Decision, now: datetime
) -> None:
    await _record_message(tx, message, topic, digest, now)
    await _decide(ctx, tx, message, topic, digest, decision, now)


async def _decide(
    ctx: GateContext,
    tx: GateTransaction,
    message: Envelope,
    topic: str,
    digest: str,
    decision: Decision,
    now: datetime,
    *,
    status: ReceiptStatus | None = None,
    detail: str | None = None,
) -> None:
    """Record a received message's decision and act on it; the sender's receipt says ``status`` (a
    correction's ``corrected``) unless the message is withheld."""
    mid = message.message_id
    reasons = [r.value for r in decision.reasons]
    await tx.insert_decision(
        message_id=mid,
        verdict=decision.verdict.value,
        reasons=reasons,
        policy_version=decision.policy_version,
        decided_at=now,
        refer_to=decision.refer_to,
        trace=list(decision.trace),
    )
    await tx.event(
        "decision.recorded",
        mid,
        now,
        verdict=decision.verdict.value,
        reasons=reasons,
        policy_version=decision.policy_version,
        **_areas(decision),
    )
    for release in decision.releases:
        notify_by = ctx.registry.deadline(message, release.recipient, ctx.timing_for(release.area))
        env = _signed(ctx, delivery_envelope(message, release, decision, notify_by=notify_by, now=now))
        await tx.insert_delivery(
            delivery_id=env.message_id,
            message_id=mid,
            recipient=release.recipient,
            purpose=release.purpose,
            notify_by=notify_by,
            created_at=now,
            envelope=encode(env),
            consent_id=release.consent_id,
        )
        hold = now + ctx.consent_settle if release.consent_id else None
        topic_out = ctx.registry.delivery_topic(release.recipient)
        await tx.enqueue(
            outbox_id=outbox_id(env.message_id, topic_out),
            topic=topic_out,
            key=release.recipient,
            value=encode(env),
            headers=headers_for(env),
            at=now,
            not_before=hold,
        )
        await tx.event(
            "delivery.queued",
            mid,
            now,
            delivery_id=str(env.message_id),
            recipient=release.recipient,
            agreement=release.agreement,
            fields=sorted(release.released),
            consent_id=str(release.consent_id) if release.consent_id else None,
            notify_by=notify_by.isoformat() if notify_by else None,
            envelope_sha256=stored_sha256(encode(env)),  # deliveries.envelope, and the outbox value
            outbox_id=str(outbox_id(env.message_id, topic_out)),
            **_area(release.area),
        )
    for refusal in decision.not_released:
        await tx.event(
            "share.not_released",
            mid,
            now,
            recipient=refusal.recipient,
            verdict=refusal.verdict.value,
            reasons=[r.value for r in refusal.reasons],
            **_area(refusal.area),
        )
    if decision.verdict is Verdict.WITHHOLD:
        await _quarantine(
            tx,
            mid,
            message.sender_org,
            topic,
            encode(message),
            now,
            decision.primary_reason.value,
            REASON_TEXT[decision.primary_reason],
            record=digest,
        )
        await tx.event("share.withheld", mid, now, reasons=reasons)
    if decision.refer_to:
        why = _referral_reason(decision)
        await tx.add_queue_item(
            queue=decision.refer_to, message_id=mid, reason_code=why.value, detail=REASON_TEXT[why], at=now
        )
        await tx.enqueue(
            outbox_id=outbox_id(mid, topics.MASH_QUEUE),
            topic=topics.MASH_QUEUE,
            key=str(message.correlation_id),
            value=encode(message),
            headers=headers_for(message, **{"reason-code": why.value}),
            at=now,
        )
        await tx.event(
            "share.referred",
            mid,
            now,
            queue=decision.refer_to,
            reason=why.value,
            outbox_id=str(outbox_id(mid, topics.MASH_QUEUE)),
            outbox_sha256=stored_sha256(encode(message)),
        )
    if status is None or decision.verdict is Verdict.WITHHOLD:
        status = RECEIPT_STATUS[decision.verdict]
    await _receipt(ctx, tx, message, status, now, decision.primary_reason.value, detail=detail)
    if gaps := contact_quality(message):
        await _quality_receipt(ctx, tx, message, gaps, now)
    await ctx.registry.on_decided(tx, message, decision, now, ctx.timing)


def _area(code: str | None) -> dict[str, str]:
    """In a region, the authority an audited event belongs to (its figures are recomputed from it)."""
    return {"area": code} if code is not None else {}


def _areas(decision: Decision) -> dict[str, list[str]]:
    found = {r.area for r in decision.releases if r.area} | {r.area for r in decision.not_released if r.area}
    if decision.refer_to and (queue_area := area_of_queue(decision.refer_to)) is not None:
        found.add(queue_area)
    return {"areas": sorted(found)} if found else {}


async def _quality_receipt(
    ctx: GateContext, tx: GateTransaction, message: Envelope, gaps: tuple[Missing, ...], now: datetime
) -> None:
    """A contact screening cannot fully use: accepted as decided, and the referrer told what is missing."""
    await _receipt(
        ctx, tx, message, ReceiptStatus.ACCEPTED, now, CONTACT_INCOMPLETE, salt="quality", detail=quality_detail(gaps)
    )
    await tx.event(
        "contact.flagged", message.message_id, now, reason=CONTACT_INCOMPLETE, fields=[g.field for g in gaps]
    )


def _referral_reason(decision: Decision) -> Reason:
    """Why a person must look: the routing problem an agency found, or the advice question."""
    if decision.routing_problems:
        return decision.routing_problems[0]
    asked = [r.reasons[-1] for r in decision.not_released if r.verdict is Verdict.REFER]
    return asked[0] if asked else decision.reasons[-1]


async def _enqueue(tx: GateTransaction, env: Envelope, topic: str, key: str | None, now: datetime) -> None:
    await tx.enqueue(
        outbox_id=outbox_id(env.message_id, topic),
        topic=topic,
        key=key,
        value=encode(env),
        headers=headers_for(env),
        at=now,
    )


async def _receipt(
    ctx: GateContext,
    tx: GateTransaction,
    message: Envelope,
    status: ReceiptStatus,
    now: datetime,
    reason: str,
    salt: str = "",
    detail: str | None = None,
) -> None:
    receipt = reply(
        message,
        SystemReceipt(
            receipted_message_id=message.message_id, status=status, reason_code=reason, detail=detail, received_at=now
        ),
        sender_org=GATE_ORG,
        now=now,
        salt=salt,
    )
    receipt = _signed(ctx, receipt)
    await _enqueue(tx, receipt, ctx.registry.receipts_topic(message.sender_org), message.sender_org, now)


async def _quarantine(
    tx: GateTransaction,
    message_id: uuid.UUID | None,
    sender_org: str | None,
    topic: str,
    raw: bytes | str,
    now: datetime,
    reason: str,
    detail: str,
    *,
    record: str,
) -> bool:
    """Quarantine a record and queue the notice. ``record`` identifies its content: the same record
    quarantined again for the same reason (a redelivery) writes nothing and returns False."""
    qid = corrections.quarantine_id(message_id, reason, record)
    if await tx.outbox_has(qid):
        return False
    text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    await tx.add_quarantine(
        message_id=message_id, sender_org=sender_org, topic=topic, reason_code=reason, detail=detail, raw=text, at=now
    )
    notice = Quarantined(source_message_id=message_id, sender_org=sender_org, reason_code=reason, detail=detail)
    value = notice.model_dump_json()
    await tx.enqueue(
        outbox_id=qid,
        topic=topics.GATE_QUARANTINE,
        key=sender_org,
        value=value,
        headers={"reason-code": reason, "message-id": str(message_id or "")},
        at=now,
    )
    await tx.event(
        "message.quarantined",
        message_id,
        now,
        reason=reason,
        topic=topic,
        raw_sha256=stored_sha256(text),
        outbox_id=str(qid),
        outbox_sha256=stored_sha256(value),
    )
    return True


async def _reject(
    ctx: GateContext, tx: GateTransaction, raw: bytes, topic: str, now: datetime, reason: str, detail: str
) -> Handled:
    """A record that is not a valid contract: quarantined with the reason, and its sender told."""
    ids: dict[str, Any] = peek(raw, ctx.registry.areas)
    mid, sender = ids.get("message_id"), ids.get("sender_org")
    record = hashlib.sha256(raw).hexdigest()
    fresh = await _quarantine(tx, mid, sender, topic, raw[:MAX_MESSAGE_BYTES], now, reason, detail, record=record)
    if fresh and sender and mid:
        receipt = SystemReceipt(
            receipted_message_id=mid,
            status=ReceiptStatus.REJECTED,
            reason_code=reason,
            detail=detail,
            received_at=now,
        )
        env = Envelope(
            message_id=deterministic_id("reject", str(mid), detail, record),
            kind=receipt.kind,
            sender_org=GATE_ORG,
            correlation_id=mid,
            causation_id=mid,
            produced_at=now,
            payload=receipt,
        )
        await _enqueue(tx, _signed(ctx, env), ctx.registry.receipts_topic(sender), sender, now)
    outcome = "rejected" if fresh else "duplicate"
    fields = {
        "message_id": str(mid) if mid else None,
        "agency": sender,
        "topic": topic,
        "reason": reason,
        "outcome": outcome,
    }
    return Handled(outcome, "warning", "message.rejected", fields)


async def _refuse_as_gate(tx: GateTransaction, message: Envelope, raw: bytes, topic: str, now: datetime) -> Handled:
    """Only the gate sends as the gate: a record from outside claiming to is quarantined, and no receipt
    goes to the gate itself (no loop)."""
    record = hashlib.sha256(raw).hexdigest()
    detail = f"sender_org: only the gate sends as {GATE_ORG}"
    fresh = await _quarantine(
        tx, message.message_id, GATE_ORG, topic, raw, now, "sender_is_gate", detail, record=record
    )
    fields = {"message_id": str(message.message_id), "topic": topic, "reason": "sender_is_gate"}
    return Handled("rejected" if fresh else "duplicate", "warning", "message.rejected", fields)


def _signed(ctx: GateContext, env: Envelope) -> Envelope:
    return sign(env, ctx.signer) if ctx.signer is not None else env


def _signature_problem(ctx: GateContext, message: Envelope, topic: str, now: datetime) -> tuple[str, str] | None:
    """None if the message may go on; else the reason and detail it is refused with (quarantined, its
    sender told). A signature that does not verify where signatures are not required is logged only."""
    assert ctx.verifier is not None  # the caller checked
    verdict = ctx.verifier.check(message, now)
    if verdict.reason is None:
        return None
    if not ctx.verifier.required:
        log.warning(
            "signature.not_verified",
            message_id=str(message.message_id),
            agency=message.sender_org,
            topic=topic,
            reason=verdict.reason.value,
            key_id=verdict.key_id,
        )
        return None
    return verdict.reason.value, verdict.detail
