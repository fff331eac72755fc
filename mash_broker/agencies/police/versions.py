"""A row sent again is compared with what the gate already holds: the same content is the same message
(nothing is sent); other content for the same incident and child is a correction, a new version that
supersedes the current one. A notification sent in error is withdrawn (``withdrawal_of``).

``next_version`` and ``withdrawal_of`` are pure; ``versions_of`` reads the current versions through the
``NotificationVersions`` port. A notification is named by its first version's message id, which the export
derives from force, incident reference and child (``export``); every later version has an id of its own,
derived from the version it replaces and its content, so the same correction sent twice is one message.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import RowReceipt
from mash_broker.contracts import EncompassNotification, Envelope, NotificationWithdrawn, deterministic_id
from mash_broker.contracts.corrections import WithdrawalReason
from mash_broker.core.ports import NotificationVersions
from mash_broker.core.records import NotificationHead

WITHDRAWN_DETAIL = "this notification was withdrawn; send it with other content to notify again"
SUPERSEDED_DETAIL = (
    "this row says what an earlier version said, which a later correction replaced: nothing was sent "
    "(an old export sent again?); send the current content to change it"
)
SUPERSEDED = object()  # next_version's answer for a row that repeats a replaced version


def content_of(env: Envelope) -> dict[str, Any]:
    """What a version says, less its identity: compared to tell a resend from a correction."""
    doc = env.model_dump(mode="json", exclude={"message_id", "produced_at", "signature", "replay"})
    doc["payload"].pop("supersedes", None)
    return doc


def next_version(row: Envelope, head: NotificationHead | None) -> Envelope | object | None:
    """What to send for an export row given its notification's current version in the ledger (None: none
    received yet): the row itself, the current version (the same content: nothing new to send), or a
    correction superseding it. None if the notification was withdrawn and the row says the same again."""
    if head is None:
        return row
    current = Envelope.model_validate_json(head.envelope)
    if content_of(current) == content_of(row):
        return None if head.withdrawn else current
    if any(content_of(Envelope.model_validate_json(e)) == content_of(row) for e in head.earlier_envelopes):
        return SUPERSEDED  # never a correction back to old content by re-running yesterday's file
    payload = row.payload
    assert isinstance(payload, EncompassNotification)  # an export row
    digest = hashlib.sha256(json.dumps(content_of(row), sort_keys=True).encode()).hexdigest()
    return row.model_copy(
        update={
            "message_id": deterministic_id("police-version", head.notification_id, head.message_id, digest),
            "payload": payload.model_copy(update={"supersedes": uuid.UUID(head.message_id)}),
        }
    )


def withdrawal_of(head: NotificationHead, *, now: datetime, reason: WithdrawalReason = "sent_in_error") -> Envelope:
    """Police's withdrawal of a notification's current version: ids and a reason, no child data. The same
    withdrawal asked for twice is one message (its time is ``produced_at``, which a resend may change)."""
    current = Envelope.model_validate_json(head.envelope)
    payload = current.payload
    assert isinstance(payload, EncompassNotification)
    withdrawn = NotificationWithdrawn(
        withdrawn_message_id=uuid.UUID(head.message_id),
        police_reference=payload.police_reference,
        force=payload.force,
        reason=reason,
    )
    return Envelope(
        message_id=deterministic_id("police-withdrawal", head.message_id, reason),
        kind=withdrawn.kind,
        sender_org=current.sender_org,
        sender_local_id=current.sender_local_id,
        correlation_id=current.correlation_id,
        causation_id=uuid.UUID(head.message_id),
        produced_at=now,
        classification=current.classification,
        payload=withdrawn,
    )


async def versions_of(rows: list[ParsedRow], ledger: NotificationVersions) -> tuple[list[ParsedRow], list[RowReceipt]]:
    """Each row as it is to be sent (``next_version``), and a receipt for each row of a withdrawn
    notification that says nothing new."""
    heads = await ledger.notification_heads(str(r.envelope.message_id) for r in rows)
    send: list[ParsedRow] = []
    answered: list[RowReceipt] = []
    for row in rows:
        head = heads.get(str(row.envelope.message_id))
        env = next_version(row.envelope, head)
        if env is SUPERSEDED:
            assert head is not None
            answered.append(RowReceipt(row.line, "superseded", head.message_id, reason=SUPERSEDED_DETAIL))
        elif env is None:
            assert head is not None
            answered.append(RowReceipt(row.line, "withdrawn", head.message_id, reason=WITHDRAWN_DETAIL))
        elif env is row.envelope:
            send.append(row)
        else:
            assert isinstance(env, Envelope)
            send.append(replace(row, envelope=env.model_copy(update={"produced_at": row.envelope.produced_at})))
    return send, answered
