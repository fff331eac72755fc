"""Health as a plug-in: its systems send on ``health.inbound.v1`` and receive on ``health.delivery.v1``.

Hooks: a domestic abuse notification is routed to the health visitor (under five) or school nurse team
by age, from the health directory (``MASH_HEALTH_TEAMS``); an initial health assessment request without
its consent form is refused before any agreement is tried; a request's deadline is its due time; the
health events the clocks key on are recorded with the decision; a GP report or a completed assessment
must answer a request sent to its sender.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mash_broker.agencies.health import HEALTH_CLASSES, HEALTH_DELIVERIES, HEALTH_INBOUND
from mash_broker.agencies.health.deadlines import due_by
from mash_broker.agencies.health.inbox import receive_delivery
from mash_broker.agencies.health.routing import HealthTeams
from mash_broker.agencies.health.teams import load_teams
from mash_broker.agencies.health.tracking import answer_problem, record_health_events
from mash_broker.consent_gate import Decision, PreCheck, Reason, Route
from mash_broker.contracts import EncompassNotification, Envelope, HealthAssessmentRequest
from mash_broker.core.agency import Agency, Timing
from mash_broker.core.ports import HealthTransaction
from mash_broker.core.settings import Settings


def route(message: Envelope, age: int | None, directory: Any) -> Route | None:
    """The one health team that serves the child of a domestic abuse notification, by age."""
    payload = message.payload
    if not isinstance(payload, EncompassNotification) or not isinstance(directory, HealthTeams):
        return None
    team = directory.for_child(age, payload.school_urn, payload.home_postcode)
    if team is None:
        return None
    return Route(also=(team,), trace=(f"recipient: {team} from the health directory (child aged {age})",))


def pre_check(message: Envelope) -> PreCheck | None:
    """An initial health assessment request needs the signed consent form attached."""
    if isinstance(message.payload, HealthAssessmentRequest) and message.payload.consent_form is None:
        return PreCheck(
            Reason.CONSENT_FORM_MISSING, "initial health assessment: no consent form attached; refused to the sender"
        )
    return None


def deadline(message: Envelope, recipient: str, timing: Timing) -> datetime | None:
    """A health request's due time (initial health assessment, s47 report)."""
    return due_by(message, timing.calendar.tz)


async def on_decided(
    tx: HealthTransaction, message: Envelope, decision: Decision, now: datetime, timing: Timing
) -> None:
    await record_health_events(tx, message, decision, now, timing.calendar.tz)


def teams(settings: Settings) -> HealthTeams:
    return load_teams(settings.health_teams)


HEALTH = Agency(
    name="health",
    sender_areas=frozenset({"health", "gp", "health_visitor", "school_nurse"}),
    recipient_classes=HEALTH_CLASSES,
    inbound_topic=HEALTH_INBOUND,
    delivery_topic=HEALTH_DELIVERIES,
    sends=frozenset({"contact", "s47.gp_report", "health.assessment_completed"}),
    receives=frozenset(
        {
            "notification.encompass",
            "outcome",
            "care.looked_after_change",
            "health.assessment_request",
            "s47.info_request",
        }
    ),
    inbox=receive_delivery,
    inbox_description="Gated deliveries land in health teams' and GP practices' inboxes.",
    route=route,
    pre_check=pre_check,
    deadline=deadline,
    answer_check=answer_problem,
    on_decided=on_decided,
    load_directory=teams,
)
