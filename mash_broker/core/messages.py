"""Building outbound envelopes and outbox records; content hashing for idempotence."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Container
from datetime import datetime
from typing import Any

import rfc8785

from mash_broker.consent_gate import Decision, Release
from mash_broker.contracts import Delivery, Envelope, deterministic_id
from mash_broker.contracts.payloads import Payload

GATE_ORG = "mash:gate"
MAX_MESSAGE_BYTES = 1_000_000
_ORG = re.compile(r"^[a-z][a-z0-9_-]*:[A-Za-z0-9_.-]{1,64}$")


def content_hash(message: Envelope) -> str:
    """SHA-256 over the canonical (RFC 8785) envelope, less the fields a resend may change."""
    doc = message.model_dump(mode="json", exclude={"produced_at", "signature", "replay"})
    return hashlib.sha256(rfc8785.dumps(doc)).hexdigest()


def reply(to: Envelope, payload: Payload, *, sender_org: str, now: datetime, salt: str = "") -> Envelope:
    """An envelope caused by ``to``: same correlation, a deterministic id, no subject."""
    return Envelope(
        message_id=deterministic_id("reply", str(to.message_id), payload.kind, sender_org, salt),
        kind=payload.kind,
        sender_org=sender_org,
        correlation_id=to.correlation_id,
        causation_id=to.message_id,
        produced_at=now,
        payload=payload,
    )


def delivery_id(source_message_id: uuid.UUID, recipient: str) -> uuid.UUID:
    """A delivery's message id: the same for every send of one message to one recipient (a replay too),
    so recipients deduplicate by it."""
    return deterministic_id("delivery", str(source_message_id), recipient)


def delivery_envelope(
    message: Envelope,
    release: Release,
    decision: Decision,
    *,
    notify_by: datetime | None,
    now: datetime,
    replay: bool = False,
) -> Envelope:
    """What the gate sends ``release.recipient`` for ``message`` under ``decision`` (unsigned)."""
    delivery = Delivery(
        source_message_id=message.message_id,
        source_kind=message.kind,
        recipient=release.recipient,
        purpose=release.purpose,
        content_level=release.content_level,
        released=release.released,
        notify_by=notify_by,
        policy_version=release.policy_version or decision.policy_version,
        decision_reasons=tuple(r.value for r in decision.reasons),
    )
    return Envelope(
        message_id=delivery_id(message.message_id, release.recipient),
        kind="delivery",
        sender_org=GATE_ORG,
        correlation_id=message.correlation_id,
        causation_id=message.message_id,
        produced_at=now,
        lawful_basis=message.lawful_basis,
        replay=replay,
        payload=delivery,
    )


def _no_trace() -> dict[str, str]:
    return {}


_trace_context: Callable[[], dict[str, str]] = _no_trace


def carry_trace_context(current: Callable[[], dict[str, str]] | None) -> None:
    """Have ``headers_for`` add the current trace context (W3C ``traceparent``) given by ``current``, so a
    record queued now and published later by the relay continues the trace of the work that queued it.
    The app sets it when tracing is on (app.observability); None stops it."""
    global _trace_context
    _trace_context = current or _no_trace


def headers_for(message: Envelope, **extra: str) -> dict[str, str]:
    """Kafka headers: ids and kind only (and a trace context when tracing is on), never personal data."""
    return {
        "message-id": str(message.message_id),
        "kind": message.kind,
        "correlation-id": str(message.correlation_id),
        "sender-org": message.sender_org,
        **extra,
        **_trace_context(),
    }


def encode(message: Envelope) -> str:
    return message.model_dump_json()


def outbox_id(message_id: uuid.UUID, topic: str) -> uuid.UUID:
    return deterministic_id("outbox", str(message_id), topic)


def peek(raw: bytes, areas: Container[str]) -> dict[str, Any]:
    """Best-effort ids from a message that failed its contract, to say whose it was: its sender only if
    its area is one the broker knows (``areas``), so a receipt goes to a topic someone reads."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep to read
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        out["message_id"] = uuid.UUID(str(doc.get("message_id")))
    sender = doc.get("sender_org")
    if isinstance(sender, str) and _ORG.match(sender) and sender.split(":")[0] in areas:
        out["sender_org"] = sender
    return out
