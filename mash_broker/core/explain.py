"""Plain-English accounts of gate decisions: what was tried, what held, what went to whom, and why not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mash_broker.consent_gate import REASON_TEXT, Decision, Policy, Reason
from mash_broker.contracts import Delivery, Envelope, NotFound
from mash_broker.core.areas import Region
from mash_broker.core.clocks.status import list_clocks
from mash_broker.core.pipeline import decide_message, inputs_for
from mash_broker.core.ports import RecordedDecisions
from mash_broker.core.records import ClockRecord, DecidedMessage, DeliveryRecord
from mash_broker.core.registry import Registry


def reason_line(code: str) -> str:
    try:
        return f"{code}: {REASON_TEXT[Reason(code)]}"
    except ValueError:
        return code


def describe_decision(message: Envelope, decision: Decision, region: Region | None = None) -> list[str]:
    """A decision made now (`mash gate check`), in plain English; in a ``region``, each release and refusal
    names the authority whose agreements decided it."""
    basis = message.lawful_basis
    lines = [
        f"message {message.message_id} ({message.kind}) from {message.sender_org}",
        f"lawful basis: {_basis(message)}" if basis else "lawful basis: none recorded",
        f"decision: {decision.verdict.value.upper()} under policy {decision.policy_version}",
        "reasons:",
        *[f"  - {reason_line(r.value)}" for r in decision.reasons],
        "rules tried:",
        *[f"  - {line}" for line in decision.trace],
    ]
    for release in decision.releases:
        authority = f"{_authority(release.area, release.policy_version, region)}, " if release.area else ""
        lines.append(
            f"released to {release.recipient} under {authority}{release.agreement} "
            f"({release.content_level.value}): " + ", ".join(release.released)
        )
    for refusal in decision.not_released:
        lines.append(
            f"not released to {refusal.recipient}{_by(refusal.area, region)} ({refusal.verdict.value}): "
            + "; ".join(REASON_TEXT[r] for r in refusal.reasons[-1:])
        )
    if decision.refer_to:
        lines.append(f"referred to the {decision.refer_to} queue for a person to decide")
    return lines


async def explain(ledger: RecordedDecisions, message_ref: str, region: Region | None = None) -> list[str]:
    """The recorded decision on a message, and everything that followed, in plain English. A delivery or
    refusal made in a region names its authority (from the audited log; ``region`` gives their names)."""
    mid = await ledger.find_message_id(message_ref)
    row = await ledger.message(mid) if mid else None
    if row is None or mid is None:
        raise NotFound(f"no message {message_ref} in the ledger (give the id or at least its first 8 characters)")
    message = Envelope.model_validate_json(row.envelope)
    lines = [
        f"message {mid} ({message.kind}) from {message.sender_org}, received {_at(row.received_at)}",
        f"lawful basis: {_basis(message)}" if message.lawful_basis else "lawful basis: none recorded",
    ]
    if row.verdict is None:
        return [*lines, "no decision is recorded"]
    lines += [
        f"decision: {row.verdict.upper()} under policy {row.policy_version} at {_at(row.decided_at)}",
        "reasons:",
        *[f"  - {reason_line(r)}" for r in row.reasons or ()],
        "rules tried:",
        *[f"  - {line}" for line in row.trace or ()],
    ]
    deliveries = await ledger.deliveries_of(mid)
    events = await ledger.events_of(mid)
    areas = {str(e.detail["delivery_id"]): e.detail.get("area") for e in events if e.event_type == "delivery.queued"}
    replaced = {"notification_corrected", "notification_withdrawn"} & set(row.reasons or ())  # core.corrections
    for d in deliveries:
        delivery = Envelope.model_validate_json(d.envelope).payload
        fields = ", ".join(delivery.released) if isinstance(delivery, Delivery) else ""
        area, version = areas.get(d.delivery_id), delivery.policy_version if isinstance(delivery, Delivery) else None
        under = f" under {_authority(area, version, region)}" if area else ""
        state = (
            f"withdrawn at {_at(d.withdrawn_at)} by its sender (corrected or withdrawn)"
            if d.withdrawn_at and replaced
            else "withdrawn before it was sent (consent withdrawn)"
            if d.withdrawn_at
            else f"read by {d.read_by} at {_at(d.read_at)}"
            if d.read_at
            else f"delivered {_at(d.delivered_at)}"
            if d.delivered_at
            else "not yet delivered"
        )
        consent = f"; relied on consent {d.consent_id}" if d.consent_id else ""
        lines.append(f"released to {d.recipient}{under}: {fields}; {state}{consent}")
    for e in events:
        detail = e.detail
        if e.event_type == "share.not_released":
            why = "; ".join(reason_line(r) for r in detail.get("reasons", [])[-1:])
            by = _by(detail.get("area"), region)
            lines.append(f"not released to {detail.get('recipient')}{by} ({detail.get('verdict')}): {why}")
        elif e.event_type == "share.withdrawn":
            lines.append(f"withdrawn from {detail.get('recipient')} at {_at(e.at)}: {reason_line(detail['reason'])}")
        elif e.event_type == "share.referred":
            lines.append(f"referred to the {detail.get('queue')} queue: {reason_line(detail.get('reason', ''))}")
        elif e.event_type == "message.quarantined":
            lines.append(f"quarantined: {reason_line(detail.get('reason', ''))}")
        elif e.event_type == "message.replayed":
            lines.append(
                f"replayed to {detail.get('recipient')} on {detail.get('topic')} at {_at(e.at)} "
                f"(replay {detail.get('replay_id')}, policy {detail.get('policy_version')})"
            )
        elif e.event_type == "replay.withheld":
            why = "; ".join(reason_line(r) for r in detail.get("reasons", [])[-1:])
            lines.append(
                f"withheld from {detail.get('recipient')} by replay {detail.get('replay_id')} at {_at(e.at)}: {why}"
            )
    for subject in (mid, *(d.delivery_id for d in deliveries)):
        lines += [_clock_line(c) for c in await list_clocks(ledger, subject_id=subject)]
    return lines


def _clock_line(c: ClockRecord) -> str:
    """One declared clock on the message (or one of its deliveries): where it stands, and who it alerts."""
    if c.stopped_at is not None:
        state = f"stopped {_at(c.stopped_at)} ({'on time' if c.stopped_at <= c.due_at else 'late'})"
    else:
        state = str(c.state) + (f" {_at(c.breached_at)}" if c.breached_at else "")
    return (
        f"clock {c.name} ({c.subject_id[:8]}): started {_at(c.started_at)}, due {_at(c.due_at)}, "
        f"{state}; escalates to {c.escalate_to}"
    )


@dataclass(frozen=True)
class Change:
    """A decision that would differ under another policy."""

    message_id: str
    kind: str
    was: str
    would_be: str
    recipients_was: tuple[str, ...]
    recipients_would_be: tuple[str, ...]
    fields_added: tuple[str, ...]
    fields_removed: tuple[str, ...]


async def what_if(
    ledger: RecordedDecisions,
    policy: Policy,
    *,
    registry: Registry,
    directories: Mapping[str, Any],
    region: Region | None = None,
) -> tuple[int, list[Change]]:
    """Re-decide every recorded message under ``policy`` (in a ``region``: each recipient under its own
    authority's policy, as the gate does), with the consent known when it was decided and the agencies'
    directories as they are now (``directories``: those from configuration). Nothing is recorded or sent.
    Returns how many were replayed and those that would change."""
    changes: list[Change] = []
    rows = [r for r in await ledger.decided_messages() if r.verdict != "recorded"]
    for row in rows:
        message = Envelope.model_validate_json(row.envelope)
        new = await redecide(  # the consent as of then is what is replayed
            ledger,
            message,
            policy=policy,
            registry=registry,
            directories=directories,
            now=row.decided_at,
            as_of=row.decided_at,
            region=region,
        )
        if change := await compare(ledger, row, new):
            changes.append(change)
    return len(rows), changes


async def redecide(
    ledger: RecordedDecisions,
    message: Envelope,
    *,
    policy: Policy,
    registry: Registry,
    directories: Mapping[str, Any],
    now: datetime,
    as_of: datetime | None = None,
    region: Region | None = None,
) -> Decision:
    """Decide a message again at ``now`` through the gate's own pipeline, with the consent the ledger held
    at ``as_of`` (None: all it holds now), ``directories`` from configuration and the ledger's own, and in
    a ``region`` each recipient under its own authority's policy and the directory's school authorities.
    Nothing is recorded."""
    async with ledger.reader() as tx:
        inputs = await inputs_for(
            tx,
            message,
            policy=policy,
            now=now,
            registry=registry,
            directories=directories,
            as_of=as_of,
            region=region,
        )
    return decide_message(message, inputs)


async def compare(ledger: RecordedDecisions, row: DecidedMessage, new: Decision) -> Change | None:
    """How ``new`` differs from the recorded decision on a message (a ``decided_messages`` row): verdict,
    recipients or released fields; None if it does not. Compared with the decision as it was made: a
    share stopped later by a withdrawal was a share then (its delivery is kept, marked withdrawn)."""
    was = await _original_verdict(ledger, row)
    old = await ledger.deliveries_of(row.message_id)
    old_fields = {f for d in old for f in _released(d)}
    new_fields = {f for r in new.releases for f in r.released}
    old_to = tuple(sorted(d.recipient for d in old))
    new_to = tuple(sorted(r.recipient for r in new.releases))
    if (new.verdict.value, new_to, new_fields) == (was, old_to, old_fields):
        return None
    return Change(
        row.message_id,
        row.kind,
        was,
        new.verdict.value,
        old_to,
        new_to,
        tuple(sorted(new_fields - old_fields)),
        tuple(sorted(old_fields - new_fields)),
    )


async def _original_verdict(ledger: RecordedDecisions, row: DecidedMessage) -> str:
    recorded = [e for e in await ledger.events_of(row.message_id) if e.event_type == "decision.recorded"]
    return str(recorded[0].detail["verdict"]) if recorded else str(row.verdict)


def _released(delivery_row: DeliveryRecord) -> list[str]:
    payload = Envelope.model_validate_json(delivery_row.envelope).payload
    return list(payload.released) if isinstance(payload, Delivery) else []


def _authority(code: str | None, version: str | None, region: Region | None) -> str:
    """``policy 998-2026.11-1 of authority 998 (Example South)``: what a release in a region rests on."""
    area = region.area(code) if region is not None else None
    name = f" ({area.name})" if area is not None else ""
    return f"policy {version} of authority {code}{name}" if version else f"the agreements of authority {code}{name}"


def _by(code: str | None, region: Region | None) -> str:
    """`` by authority 998`` for a refusal made in a region; else ''."""
    area = region.area(code) if region is not None and code is not None else None
    return f" by authority {code}" + (f" ({area.name})" if area is not None else "") if code else ""


def _basis(message: Envelope) -> str:
    b = message.lawful_basis
    assert b is not None
    parts = [f"Article 6 {b.article6.value}"]
    if b.statutory_power:
        parts.append(f"statutory power {b.statutory_power.value}")
    if b.article9:
        parts.append(f"Article 9 {b.article9.value}")
    if b.consent_not_used_because:
        parts.append(f"consent not used because {b.consent_not_used_because.value}")
    if b.decided_by:
        parts.append(f"decided by {b.decided_by}")
    if message.consent_ref:
        parts.append(f"consent {message.consent_ref}")
    return ", ".join(parts)


def _at(ts: datetime | None) -> str:
    return ts.isoformat(timespec="seconds") if ts else "-"
