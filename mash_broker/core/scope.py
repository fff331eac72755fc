"""Whose is an audited-log entry: one local authority's (in a region) or one police force's.

A MASH manager sees only their authority's figures, clocks and deliveries; a force sees its own messages
across the region. Both are read from the audited log alone, so a verified export gives the same answer:

- an authority's: the messages decided under its agreements (``decision.recorded`` lists its code in
  ``areas``), the deliveries it released (``delivery.queued`` with its ``area``) and what followed them
  (receipts, reads, clocks, by ``delivery_id``), its refusals (``share.not_released``) and its queues
  (``share.referred`` to ``mash:<code>`` or ``advice:<code>``). A cross-border child's message is in both
  authorities' scopes, each with only its own deliveries.
- a force's: every entry about a message it sent (``message.received`` from ``police:<force>``) and about
  the deliveries made of those messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mash_broker.core.areas import area_of_queue
from mash_broker.core.ports import LoggedEvent

# Entries that belong to one delivery of a message rather than to the message as a whole.
_PER_DELIVERY = frozenset({"delivery.queued", "share.not_released", "share.referred"})


@dataclass(frozen=True)
class Scope:
    """The messages and deliveries one authority or force may see."""

    label: str
    messages: frozenset[str]
    deliveries: frozenset[str]

    def keeps(self, e: LoggedEvent) -> bool:
        delivery = e.detail.get("delivery_id")
        if delivery is not None:
            return str(delivery) in self.deliveries
        return e.event_type not in _PER_DELIVERY and str(e.message_id) in self.messages

    def select(self, events: Iterable[LoggedEvent]) -> list[LoggedEvent]:
        return [e for e in events if self.keeps(e)]


def area_scope(events: Iterable[LoggedEvent], code: str) -> Scope:
    """Authority ``code``'s part of the log."""
    events = list(events)
    messages: set[str] = set()
    deliveries: set[str] = set()
    for e in events:
        d = e.detail
        if e.event_type == "decision.recorded" and code in (d.get("areas") or ()):
            messages.add(str(e.message_id))
        elif e.event_type == "delivery.queued" and d.get("area") == code:
            deliveries.add(str(d["delivery_id"]))
    return _AreaScope(f"authority {code}", frozenset(messages), frozenset(deliveries), code)


@dataclass(frozen=True)
class _AreaScope(Scope):
    code: str

    def keeps(self, e: LoggedEvent) -> bool:
        d = e.detail
        if e.event_type == "share.not_released":
            return d.get("area") == self.code
        if e.event_type == "share.referred":
            return area_of_queue(str(d.get("queue"))) == self.code
        return super().keeps(e)


def force_scope(events: Iterable[LoggedEvent], force: str) -> Scope:
    """Police force ``force``'s (``police:<force>``, or the bare name) part of the log."""
    sender = force if ":" in force else f"police:{force}"
    events = list(events)
    messages = {
        str(e.message_id) for e in events if e.event_type == "message.received" and e.detail.get("sender_org") == sender
    }
    deliveries = {
        str(e.detail["delivery_id"])
        for e in events
        if e.event_type == "delivery.queued" and str(e.message_id) in messages
    }
    return _ForceScope(f"force {sender}", frozenset(messages), frozenset(deliveries))


@dataclass(frozen=True)
class _ForceScope(Scope):
    def keeps(self, e: LoggedEvent) -> bool:
        if e.event_type in ("share.not_released", "share.referred"):
            return str(e.message_id) in self.messages
        return super().keeps(e)
