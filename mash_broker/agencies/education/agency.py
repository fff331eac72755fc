"""Education as a plug-in: schools and education services send on ``education.inbound.v1`` and receive
on ``education.delivery.v1``; an Operation Encompass notification is routed to the child's school from
the school directory (the ledger's), with the Encompass notify-by as the school's deadline."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime
from typing import Any

from mash_broker.agencies.education import EDUCATION_DELIVERIES, EDUCATION_INBOUND
from mash_broker.agencies.education.inbox import receive_delivery
from mash_broker.consent_gate import MASH_QUEUE, Reason, Route
from mash_broker.contracts import EncompassNotification, Envelope
from mash_broker.core.agency import Agency, Timing
from mash_broker.core.clocks import encompass_deadline


def route(message: Envelope, age: int | None, directory: Any) -> Route | None:
    """The child's school, if it is given and in the directory; else a routing problem for the MASH."""
    payload = message.payload
    if not isinstance(payload, EncompassNotification):
        return None
    schools: Container[str] = directory if directory is not None else frozenset()
    urn = payload.school_urn
    if urn is not None and urn in schools:
        return Route(first=(f"school:{urn}",))
    problem = Reason.SCHOOL_NOT_GIVEN if urn is None else Reason.SCHOOL_NOT_IN_DIRECTORY
    return Route(problems=(problem,), trace=(f"recipient: {problem.value}; referred to the {MASH_QUEUE} queue",))


def deadline(message: Envelope, recipient: str, timing: Timing) -> datetime | None:
    """A school's Encompass notify-by: before the next school day (the configured time)."""
    if not isinstance(message.payload, EncompassNotification) or not recipient.startswith("school:"):
        return None
    return encompass_deadline(
        message.payload.occurred_at,
        timing.calendar,
        notify_by=timing.notify_by,
        school_day_starts=timing.school_day_starts,
    )


async def known_schools(tx: Any) -> frozenset[str]:
    """The school directory as the gate routes by: every URN the ledger knows, when it decides."""
    urns: frozenset[str] = await tx.known_school_urns()
    return urns


EDUCATION = Agency(
    name="education",
    sender_areas=frozenset({"school", "education"}),
    recipient_classes=frozenset({"school", "education"}),
    inbound_topic=EDUCATION_INBOUND,
    delivery_topic=EDUCATION_DELIVERIES,
    sends=frozenset({"contact"}),
    receives=frozenset({"notification.encompass", "outcome"}),
    inbox=receive_delivery,
    inbox_description="Gated notifications land in each school's inbox.",
    route=route,
    deadline=deadline,
    read_directory=known_schools,
)
