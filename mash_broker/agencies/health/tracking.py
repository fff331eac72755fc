"""The health adapter's records in the gate's transaction: the audited events the health clocks key on,
and a GP report checked against the request it answers. Thin I/O over ``adapters.health.deadlines``.

Audited events (each in the same ledger transaction as the message and its decision, only when the
gate shares the message):

- ``health.iha_requested`` (the request): ``due_by``, the end of the 20th working day after the
  child became looked after; the delivery carries the same time as ``notify_by``.
- ``s47.gp_report_requested`` (the request): ``answer_by`` and the practices asked.
- ``s47.gp_report_received`` (recorded against the request, ``request_message_id`` in the detail):
  the report's id, when it was received, and ``status`` (answered on time or late); only the first
  report for a request (``first_answer``) sets the request's answer, so "was it answered on time" has
  one recorded answer. ``s47_status`` reads it back.
- ``care.child_looked_after`` / ``care.child_ceased_looked_after`` (the notification to the GP).
- ``health.initial_assessment_completed`` (recorded against the IHA request, ``request_message_id`` in
  the detail): health says the assessment was done; a completion that answers no request sent to that
  team is refused like an unmatched GP report.

Clocks (``mash_broker/defaults/clocks.toml``): ``s47_gp_report`` runs from ``s47.gp_report_requested`` to
``s47.gp_report_received``, due at ``answer_by``; ``initial_health_assessment`` from
``health.iha_requested``, due at ``due_by``: the same due times as the statuses recorded here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mash_broker.agencies.health.deadlines import AnswerStatus, answer_status, due_by
from mash_broker.consent_gate import Decision, Verdict
from mash_broker.contracts import (
    Envelope,
    GpReport,
    HealthAssessmentCompleted,
    HealthAssessmentRequest,
    LookedAfterChange,
    S47InfoRequest,
)
from mash_broker.core.ports import HealthLedger, HealthTransaction

# An answer's kind -> the kind of request it must answer, and the reason when it does not.
ANSWERS = {
    "s47.gp_report": ("s47.info_request", "no s47 information request with this id was sent to this practice"),
    "health.assessment_completed": (
        "health.assessment_request",
        "no initial health assessment request with this id was sent to this team",
    ),
}


async def answer_problem(tx: HealthTransaction, message: Envelope) -> tuple[str, str] | None:
    """For an answer (a GP report, a completed assessment), the field and reason it cannot be taken as one;
    None if it can, or for another kind.

    The same reason whether the request does not exist or went to someone else: a practice or team learns
    nothing about others' requests."""
    payload = message.payload
    if not isinstance(payload, GpReport | HealthAssessmentCompleted):
        return None
    request_kind, reason = ANSWERS[payload.kind]
    request = await _request(tx, str(payload.request_message_id), request_kind)
    if request is None or message.sender_org not in request.recipients:
        return "payload.request_message_id", reason
    return None


async def record_health_events(
    tx: HealthTransaction, message: Envelope, decision: Decision, now: datetime, tz: ZoneInfo
) -> None:
    """The audited events of a shared health message (see the module docstring)."""
    if decision.verdict is not Verdict.SHARE:
        return
    payload, mid = message.payload, message.message_id
    recipients = sorted(r.recipient for r in decision.releases)
    if isinstance(payload, HealthAssessmentRequest):
        due = due_by(message, tz)
        assert due is not None
        await tx.event(
            "health.iha_requested",
            mid,
            now,
            due_by=due.isoformat(),
            recipients=recipients,
            looked_after_since=payload.looked_after_since.isoformat(),
        )
    elif isinstance(payload, S47InfoRequest):
        await tx.event(
            "s47.gp_report_requested", mid, now, answer_by=payload.answer_by.isoformat(), recipients=recipients
        )
    elif isinstance(payload, LookedAfterChange):
        event = (
            "care.child_looked_after" if payload.change == "became_looked_after" else "care.child_ceased_looked_after"
        )
        await tx.event(event, mid, now, effective_on=payload.effective_on.isoformat(), recipients=recipients)
    elif isinstance(payload, HealthAssessmentCompleted):
        request_id = str(payload.request_message_id)
        await tx.event(
            "health.initial_assessment_completed",
            request_id,
            now,
            request_message_id=request_id,
            completed_message_id=str(mid),
            completed_on=payload.completed_on.isoformat(),
        )
    elif isinstance(payload, GpReport):
        request_id = str(payload.request_message_id)
        request = await _request(tx, request_id, "s47.info_request")
        assert request is not None
        assert isinstance(request.payload, S47InfoRequest)
        first = not await tx.gp_report_recorded(request_id)
        status = answer_status(request.payload.answer_by, now, now)
        await tx.event(
            "s47.gp_report_received",
            request_id,
            now,
            request_message_id=request_id,
            report_message_id=str(mid),
            gp_practice=message.sender_org,
            first_answer=first,
            answer_by=request.payload.answer_by.isoformat(),
            status=status.value,
        )


async def s47_status(ledger: HealthLedger, request_id: str, now: datetime) -> dict[str, Any] | None:
    """The one recorded answer to "was this s47 request answered on time"; None if no such request was shared."""
    events = await ledger.events_of(request_id)
    requested = next((e for e in events if e.event_type == "s47.gp_report_requested"), None)
    if requested is None:
        return None
    answer_by = datetime.fromisoformat(requested.detail["answer_by"])
    answer = next((e for e in events if e.event_type == "s47.gp_report_received" and e.detail["first_answer"]), None)
    answered_at = answer.at if answer else None
    status: AnswerStatus = answer_status(answer_by, answered_at, now)
    return {
        "request_message_id": request_id,
        "answer_by": answer_by,
        "answered_at": answered_at,
        "report_message_id": answer.detail["report_message_id"] if answer else None,
        "status": status.value,
    }


async def _request(tx: HealthTransaction, request_id: str, kind: str) -> Envelope | None:
    request = await tx.recorded_request(request_id, kind)
    return Envelope.model_validate_json(request.envelope) if request else None
