"""The gate's decision as the tests call it: through the one pipeline (``core.pipeline.decide_message``)
with the shipped agencies' hooks, given the school directory and the health teams the way the old
``decide(known_schools=..., health_teams=...)`` took them. Pure."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from mash_broker.agencies.health.routing import NO_HEALTH_TEAMS, HealthTeams
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import ConsentFacts, Decision, Policy
from mash_broker.contracts import Envelope
from mash_broker.core.pipeline import Inputs, decide_message

NO_FACTS = ConsentFacts()


def inputs(
    *,
    known_schools: Collection[str],
    policy: Policy,
    now: datetime,
    facts: ConsentFacts = NO_FACTS,
    health_teams: HealthTeams = NO_HEALTH_TEAMS,
    referrer: str | None = None,
) -> Inputs:
    return Inputs(
        policy=policy,
        now=now,
        registry=REGISTRY,
        facts=facts,
        referrer=referrer,
        directories={"education": frozenset(known_schools), "health": health_teams},
    )


def decide(message: Envelope, **given: object) -> Decision:
    """Decide ``message`` as the gate does (``known_schools``, ``policy``, ``now``, ``facts``, ``health_teams``)."""
    return decide_message(message, inputs(**given))  # type: ignore[arg-type]


def decide_outcome(message: Envelope, *, referrer: str, **given: object) -> Decision:
    """Decide an outcome as the gate does, told to ``referrer`` (who raised its contact)."""
    return decide_message(message, inputs(referrer=referrer, **given))  # type: ignore[arg-type]
