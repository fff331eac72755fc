"""What the agencies derive for a message before the gate decides it. Pure data, no agency named.

The pipeline (``core.pipeline``) asks each agency's hooks and hands the gate the result: ``Route`` (the
recipients an agency's directory derives, the routing problems a person must resolve, and the trace lines
that say why) and ``PreCheck`` (a message an agency refuses before any agreement is tried).
"""

from __future__ import annotations

from dataclasses import dataclass

from mash_broker.consent_gate.decision import Reason


@dataclass(frozen=True)
class Route:
    """Recipients derived for one message: ``first`` go before the recipients it names, ``also`` after."""

    first: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    problems: tuple[Reason, ...] = ()  # the message goes to the MASH queue for a person to route
    trace: tuple[str, ...] = ()

    def __add__(self, other: Route) -> Route:
        return Route(
            first=(*self.first, *other.first),
            also=(*self.also, *other.also),
            problems=(*self.problems, *other.problems),
            trace=(*self.trace, *other.trace),
        )


@dataclass(frozen=True)
class PreCheck:
    """A message refused before any agreement is tried: the reason, and the trace line saying why."""

    reason: Reason
    why: str


NO_ROUTE = Route()
