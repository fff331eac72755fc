"""An agency as a plug-in: what it sends and receives, where, and the hooks the gate's pipeline calls.

Each agency folder (``mash_broker/agencies/<name>/``) declares one ``Agency``; the list of them is
``mash_broker.agencies.registry.AGENCIES`` and everything else (topics, subscriptions, publishers, inboxes,
the republish set, the policy's known kinds) is derived from it by ``core.registry.Registry``. The gate
service and the pure gate know no agency by name: they call these hooks.

The pure hooks (routing, pre-check, deadline) take typed inputs and return values; the two ledger hooks
(``answer_check``, ``on_decided``) run inside the gate's transaction, through the unit of work it hands them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Protocol

from mash_broker.consent_gate import Decision, PreCheck, Route
from mash_broker.contracts import Envelope
from mash_broker.core.clocks import SchoolCalendar
from mash_broker.core.settings import Settings


@dataclass(frozen=True)
class Timing:
    """What a deadline hook needs: the school calendar and the local notify-by and school-day times."""

    calendar: SchoolCalendar
    notify_by: time
    school_day_starts: time


class Inbox(Protocol):
    """An agency's receive function for its delivery topic: records the system receipt, acknowledges it."""

    async def __call__(self, ledger: Any, raw: bytes, now: datetime, *, sign: Any = None) -> str: ...


# The hooks. ``directory`` is the agency's own directory (``Agency.load_directory`` or
# ``read_directory``), None when it has none; ``age`` is the child's age as the gate counts it.
Routing = Callable[[Envelope, int | None, Any], Route | None]
PreChecking = Callable[[Envelope], PreCheck | None]
Deadline = Callable[[Envelope, str, Timing], datetime | None]
# The unit of work is passed as Any: each agency types it as the storage transaction it uses.
AnswerCheck = Callable[[Any, Envelope], Awaitable[tuple[str, str] | None]]
OnDecided = Callable[[Any, Envelope, Decision, datetime, Timing], Awaitable[None]]
ReadDirectory = Callable[[Any], Awaitable[Any]]
LoadDirectory = Callable[[Settings], Any]


@dataclass(frozen=True)
class Agency:
    """One agency's plug-in. Only ``name`` is required; an agency with no topic of its own sends on
    ``mash.inbound.v1`` and receives on ``mash.delivery.v1``."""

    name: str
    # The ``<area>`` of its systems' ``<area>:<org>`` sender ids: each gets ``<area>.receipt.v1``.
    sender_areas: frozenset[str] = frozenset()
    # Recipient classes (``<class>:<id>``) whose deliveries go on this agency's ``delivery_topic``.
    recipient_classes: frozenset[str] = frozenset()
    inbound_topic: str | None = None
    delivery_topic: str | None = None
    sends: frozenset[str] = frozenset()  # message kinds its systems send the gate
    receives: frozenset[str] = frozenset()  # message kinds it may be delivered
    inbox: Inbox | None = None  # subscribed to ``delivery_topic``
    inbox_description: str = ""
    # Whose acknowledgements (``<area>.acknowledgement.v1``) it is sent: an agency whose messages are
    # delivered to others and who wants their receipts and reads.
    acknowledged: bool = False
    route: Routing | None = None
    pre_check: PreChecking | None = None
    deadline: Deadline | None = None
    answer_check: AnswerCheck | None = None
    on_decided: OnDecided | None = None
    read_directory: ReadDirectory | None = None  # from the ledger, when the gate decides
    load_directory: LoadDirectory | None = None  # from configuration, once at start
    notes: tuple[str, ...] = field(default=())
