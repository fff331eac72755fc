"""The agencies, taken together: every list the stack needs is derived here from one tuple of ``Agency``.

Built once from ``mash_broker.agencies.registry.AGENCIES`` and handed to whoever needs it (the composition
root, the gate, the commands). A fourth agency is one more entry; no list elsewhere names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from mash_broker.consent_gate import NO_ROUTE, Decision, PreCheck, Route
from mash_broker.contracts import Envelope, topics
from mash_broker.contracts.schemas import CONTRACTS
from mash_broker.core.agency import Agency, Inbox, Timing
from mash_broker.core.intake import DEAD_LETTERS
from mash_broker.core.settings import Settings

# The gate's own topics: created and published whatever the agencies are.
GATE_TOPICS = (topics.CONSENT_RECORDS, topics.MASH_QUEUE, topics.GATE_QUARANTINE, DEAD_LETTERS)


@dataclass(frozen=True)
class InboxSubscription:
    """One agency inbox on its delivery topic."""

    agency: str
    topic: str
    receive: Inbox
    description: str


@dataclass(frozen=True, eq=False)
class Registry:
    """The agencies and what follows from them. Refuses a second claim on an area, a class or a topic."""

    agencies: tuple[Agency, ...]

    def __post_init__(self) -> None:
        names = [a.name for a in self.agencies]
        if len(set(names)) != len(names):
            raise ValueError(f"agency names must be unique: {names}")
        for what in ("sender_areas", "recipient_classes"):
            seen: dict[str, str] = {}
            for a in self.agencies:
                for item in getattr(a, what):
                    if item in seen:
                        raise ValueError(f"{what}: {item!r} is claimed by both {seen[item]} and {a.name}")
                    seen[item] = a.name
        for a in self.agencies:
            if (a.recipient_classes or a.inbox) and a.delivery_topic is None:
                raise ValueError(f"agency {a.name}: recipient classes and an inbox need a delivery topic")
            unknown = (a.sends | a.receives) - CONTRACTS.keys()
            if unknown:
                raise ValueError(f"agency {a.name}: unknown message kinds {sorted(unknown)}")

    # -- who and where ---------------------------------------------------------------------------

    @cached_property
    def areas(self) -> frozenset[str]:
        """Every sender area the broker knows: each gets receipts on ``<area>.receipt.v1``."""
        return frozenset(area for a in self.agencies for area in a.sender_areas)

    @cached_property
    def _by_area(self) -> dict[str, Agency]:
        return {area: a for a in self.agencies for area in a.sender_areas}

    @cached_property
    def _delivery_by_class(self) -> dict[str, str]:
        return {c: a.delivery_topic for a in self.agencies if a.delivery_topic for c in a.recipient_classes}

    def delivery_topic(self, recipient: str) -> str:
        """The topic a gated delivery to ``recipient`` (``<class>:<id>``) is published on."""
        return self._delivery_by_class.get(topics.area_of(recipient), topics.MASH_DELIVERIES)

    def inbound_topic(self, sender_org: str, kind: str) -> str:
        """The topic a sender publishes a message of ``kind`` on (consent records have their own)."""
        if kind in topics.CONSENT_KINDS:
            return topics.CONSENT_RECORDS
        agency = self._by_area.get(topics.area_of(sender_org))
        return (agency.inbound_topic if agency else None) or topics.MASH_INBOUND

    def receipts_topic(self, sender_org: str) -> str:
        return topics.receipts_topic(sender_org)

    # -- topic lists -------------------------------------------------------------------------------

    @cached_property
    def inbound_topics(self) -> tuple[str, ...]:
        """What the gate subscribes to."""
        own = [a.inbound_topic for a in self.agencies if a.inbound_topic]
        return _unique(*own, topics.MASH_INBOUND, topics.CONSENT_RECORDS)

    @cached_property
    def delivery_topics(self) -> tuple[str, ...]:
        """Every delivery topic; after a restart, every one of them is republished."""
        return _unique(*(a.delivery_topic for a in self.agencies if a.delivery_topic), topics.MASH_DELIVERIES)

    @property
    def republish_topics(self) -> tuple[str, ...]:
        return self.delivery_topics

    @cached_property
    def outbound_topics(self) -> tuple[str, ...]:
        """What the gate and the inboxes publish on: deliveries, each area's receipts and acknowledgements."""
        per_area = [t for area in sorted(self.areas) for t in (f"{area}.receipt.v1", f"{area}.acknowledgement.v1")]
        return _unique(*self.delivery_topics, *per_area, topics.MASH_QUEUE, topics.GATE_QUARANTINE)

    @cached_property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic to create."""
        return _unique(*self.inbound_topics, *self.outbound_topics, *GATE_TOPICS)

    @cached_property
    def inboxes(self) -> tuple[InboxSubscription, ...]:
        return tuple(
            InboxSubscription(a.name, a.delivery_topic, a.inbox, a.inbox_description)
            for a in self.agencies
            if a.inbox is not None and a.delivery_topic is not None
        )

    @cached_property
    def policy_kinds(self) -> Mapping[str, type[BaseModel]]:
        """The kinds a sharing agreement may name: whatever an agency sends the gate."""
        return {k: CONTRACTS[k] for k in sorted({k for a in self.agencies for k in a.sends})}

    # -- the pipeline's hooks ----------------------------------------------------------------------

    def pre_check(self, message: Envelope) -> PreCheck | None:
        """The first agency's refusal of ``message`` before any agreement is tried; None if none refuses."""
        for a in self.agencies:
            if a.pre_check is not None and (refused := a.pre_check(message)) is not None:
                return refused
        return None

    def route(self, message: Envelope, age: int | None, directories: Mapping[str, Any]) -> Route:
        """Every agency's derived recipients and routing problems, in the agencies' order."""
        route = NO_ROUTE
        for a in self.agencies:
            if a.route is not None and (found := a.route(message, age, directories.get(a.name))) is not None:
                route = route + found
        return route

    def deadline(self, message: Envelope, recipient: str, timing: Timing) -> datetime | None:
        """The recipient's deadline for ``message`` (``notify_by`` on its delivery), if an agency sets one."""
        for a in self.agencies:
            if a.deadline is not None and (due := a.deadline(message, recipient, timing)) is not None:
                return due
        return None

    async def answer_problem(self, tx: Any, message: Envelope) -> tuple[str, str] | None:
        """For an answer that answers nothing sent to its sender: the field and the reason."""
        for a in self.agencies:
            if a.answer_check is not None and (problem := await a.answer_check(tx, message)) is not None:
                return problem
        return None

    async def on_decided(self, tx: Any, message: Envelope, decision: Decision, now: datetime, timing: Timing) -> None:
        for a in self.agencies:
            if a.on_decided is not None:
                await a.on_decided(tx, message, decision, now, timing)

    def load_directories(self, settings: Settings) -> dict[str, Any]:
        """The directories read from configuration (e.g. the health teams), once, by agency name."""
        return {a.name: a.load_directory(settings) for a in self.agencies if a.load_directory is not None}

    async def read_directories(self, tx: Any) -> dict[str, Any]:
        """The directories the ledger holds (e.g. the schools), as of now, by agency name."""
        return {a.name: await a.read_directory(tx) for a in self.agencies if a.read_directory is not None}


def _unique(*items: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
