"""The one decision pipeline: the gate, ``mash gate check``, ``what-if``, ``replay`` and ``explain`` all
decide a message here, so none of them can forget an input the others use.

``decide_message`` is pure: the agencies' hooks (through the registry) derive the routing and any pre-check
refusal, and ``consent_gate.decide`` (or ``decide_outcome`` for an outcome, with its referrer) decides.
``inputs_for`` gathers what the ledger holds for a message (the consent known of the child, the referrer
of an outcome, the directories the ledger keeps) through whichever transaction the caller holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mash_broker.consent_gate import ConsentFacts, Decision, Policy, decide, subject_age
from mash_broker.consent_gate.outcomes import decide_outcome
from mash_broker.contracts import Envelope, Outcome
from mash_broker.core.areas import Region
from mash_broker.core.consent_service import facts_for
from mash_broker.core.regional import decide_in_region
from mash_broker.core.registry import Registry


@dataclass(frozen=True)
class Inputs:
    """Everything a decision on one message rests on, besides the message."""

    policy: Policy
    now: datetime
    registry: Registry
    facts: ConsentFacts = field(default_factory=ConsentFacts)
    # Each agency's directory by agency name: those from configuration and those the ledger holds.
    directories: Mapping[str, Any] = field(default_factory=dict)
    referrer: str | None = None  # for an outcome: who raised its contact (None: not known)
    # A region of several authorities (``core.areas``; None: one area, as before), and the school directory's
    # authority of each school (URN -> ``la_code``) it routes by.
    region: Region | None = None
    schools: Mapping[str, str] = field(default_factory=dict)


def decide_message(message: Envelope, inputs: Inputs) -> Decision:
    """Decide ``message`` as the gate does. Pure: nothing is read or recorded."""
    if inputs.region is not None:
        return decide_in_region(message, inputs, inputs.region, inputs.schools)
    registry = inputs.registry
    route = registry.route(message, subject_age(message, inputs.now), inputs.directories)
    context: dict[str, Any] = {
        "policy": inputs.policy,
        "now": inputs.now,
        "facts": inputs.facts,
        "route": route,
        "pre_check": registry.pre_check(message),
    }
    if inputs.referrer is not None and isinstance(message.payload, Outcome):
        return decide_outcome(message, referrer=inputs.referrer, **context)
    return decide(message, **context)


async def referrer_of(tx: Any, message: Envelope) -> str | None:
    """Who raised the contact an outcome is about (None: not an outcome, or its contact is not recorded)."""
    if not isinstance(message.payload, Outcome):
        return None
    found: tuple[str, str] | None = await tx.message_sender(message.payload.contact_message_id)
    return found[1] if found is not None and found[0] == "contact" else None


async def inputs_for(
    tx: Any,
    message: Envelope,
    *,
    policy: Policy,
    now: datetime,
    registry: Registry,
    directories: Mapping[str, Any],
    as_of: datetime | None = None,
    region: Region | None = None,
) -> Inputs:
    """The inputs for deciding ``message`` at ``now``: the consent the ledger held at ``as_of`` (None: all it
    holds), the referrer of an outcome, and ``directories`` (from configuration) with the ledger's own; in a
    ``region``, each school's authority from the directory."""
    return Inputs(
        policy=policy,
        now=now,
        registry=registry,
        facts=await facts_for(tx, message, as_of=as_of),
        directories={**directories, **await registry.read_directories(tx)},
        referrer=await referrer_of(tx, message),
        region=region,
        schools=await school_authorities(tx) if region is not None else {},
    )


async def school_authorities(tx: Any) -> dict[str, str]:
    """Each school's local authority (``la_code``) by URN, as the directory holds it now."""
    return {urn: la_code for urn, _name, la_code, _adults in await tx.directory_entries()}
