"""Deciding a message in a region: each recipient under its own authority's agreements, one decision recorded.

The agencies' hooks derive the recipients as in one area (the child's school, the health teams). In a region
each recipient belongs to an authority (a school by its directory ``la_code``; ``mash:``/``la:`` by their
code), and an Operation Encompass notification is also sent to the MASH of the child's home authority (from
the home postcode) for its daily triage. The pure gate then decides each authority's recipients under that
authority's policy; a recipient of no single authority (a health team) goes with the lead authority (the
school's, else the child's home, else the sender's). A routing problem goes to the queue of the child's home
authority's MASH, and an unknown home authority to the regional queue, each with its reason. The decisions
are merged into one: every release and refusal carries its authority and the policy version it rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mash_broker.consent_gate import Decision, Policy, Reason, Route, Verdict, decide, subject_age
from mash_broker.consent_gate.outcomes import decide_outcome
from mash_broker.contracts import EncompassNotification, Envelope, Outcome
from mash_broker.core.areas import REGIONAL_MASH_QUEUE, Region

if TYPE_CHECKING:
    from mash_broker.core.pipeline import Inputs

Group = str | None  # an authority's code; None: the regional policy


def decide_in_region(message: Envelope, inputs: Inputs, region: Region, schools: Mapping[str, str]) -> Decision:
    """Decide ``message`` per authority (``schools``: the directory's URN -> ``la_code``). Pure."""
    registry, now = inputs.registry, inputs.now
    payload = message.payload
    lead = region.authority_of(message.sender_org, schools)
    if inputs.referrer is not None and isinstance(payload, Outcome):
        decision = decide_outcome(
            message,
            referrer=inputs.referrer,
            policy=_policy(region, lead),
            now=now,
            facts=inputs.facts,
            pre_check=registry.pre_check(message),
        )
        return _merge(message, region, [(lead, decision)], {lead: "the sender's authority"}, now)
    route = registry.route(message, subject_age(message, now), inputs.directories)
    groups: dict[Group, list[str]] = {}
    problems: dict[Group, list[Reason]] = {}
    trace: dict[Group, list[str]] = {}
    roles: dict[Group, str] = {}
    home: Group = None
    if isinstance(payload, EncompassNotification):
        school = schools.get(payload.school_urn) if payload.school_urn else None
        home = region.home_authority(payload.home_postcode)
        if school in region.areas:
            lead, roles[school] = school, "the school's authority"
        if home is not None:
            lead = lead or home
            roles[home] = (
                "the school's and the child's home authority" if home == school else "the child's home authority"
            )
            trace.setdefault(home, []).append(
                f"region: home authority {home} (from the home postcode's district); "
                f"its MASH ({region.areas[home].mash}) is told for its daily triage"
            )
        else:
            problems.setdefault(None, []).append(Reason.HOME_AUTHORITY_UNKNOWN)
            trace.setdefault(None, []).append(
                f"region: {Reason.HOME_AUTHORITY_UNKNOWN.value}; referred to the regional {REGIONAL_MASH_QUEUE} queue"
            )
    named = list(message.recipients) or list(_policy(region, lead).default_recipients.get(message.kind, ()))
    for recipient in [*route.first, *named, *route.also]:
        groups.setdefault(region.authority_of(recipient, schools) or lead, []).append(recipient)
    if home is not None:  # after the school: its MASH is told for triage
        groups.setdefault(home, []).append(region.areas[home].mash)
    if route.problems:  # the school is not known: the home authority's MASH (else the region's) must route it
        problems.setdefault(home, []).extend(route.problems)
    trace.setdefault(lead if lead in groups or lead in problems else home, []).extend(route.trace)
    roles.setdefault(lead, "the sender's authority" if lead else "regional")
    order = list(dict.fromkeys([lead, *groups, *problems])) if (groups or problems) else [lead]
    decided = []
    bare = message.model_copy(update={"recipients": ()})
    for group in order:
        if group not in groups and group not in problems and len(order) > 1:
            continue
        route_here = Route(
            first=tuple(groups.get(group, ())),
            problems=tuple(problems.get(group, ())),
            trace=tuple(trace.get(group, ())),
        )
        policy = replace(_policy(region, group), default_recipients={})
        decided.append(
            (
                group,
                decide(
                    bare,
                    policy=policy,
                    now=now,
                    facts=inputs.facts,
                    route=route_here,
                    pre_check=registry.pre_check(message),
                ),
            )
        )
    return _merge(message, region, decided, roles, now)


def _policy(region: Region, code: Group) -> Policy:
    area = region.area(code)
    return (area.policy if area is not None else region.policy).policy


def _merge(
    message: Envelope, region: Region, decided: list[tuple[Group, Decision]], roles: Mapping[Group, str], now: Any
) -> Decision:
    """One decision from each authority's: releases and refusals tagged, queues named for their authority."""
    trace = [f"region {region.name}: each recipient decided under its own authority's agreements"]
    releases, refusals, reasons, versions, problems = [], [], [], [], []
    refer_to: str | None = None
    for code, d in decided:
        who = f"authority {code}" if code else "the region (no single authority)"
        trace.append(f"{who}, {roles.get(code, 'another authority')}: policy {d.policy_version}")
        trace.extend(f"  {line}" for line in d.trace)
        versions.append(d.policy_version)
        releases += [replace(r, area=code, policy_version=d.policy_version) for r in d.releases]
        refusals += [replace(r, area=code) for r in d.not_released]
        problems += list(d.routing_problems)
        if d.refer_to and (refer_to is None or d.routing_problems):
            refer_to = region.queue_of(d.refer_to, code)
    verdicts = {d.verdict for _, d in decided}
    verdict = Verdict.SHARE if releases else Verdict.REFER if Verdict.REFER in verdicts else Verdict.WITHHOLD
    for _, d in decided:
        if verdict is Verdict.WITHHOLD or d.verdict is not Verdict.WITHHOLD:
            reasons += list(d.reasons)
    first = decided[0][1]
    return Decision(
        message_id=message.message_id,
        verdict=verdict,
        reasons=tuple(dict.fromkeys(reasons)) or first.reasons,
        policy_version="+".join(dict.fromkeys(versions)),
        decided_at=now,
        releases=tuple(releases),
        refer_to=refer_to,
        trace=tuple(trace),
        not_released=tuple(refusals),
        basis_used=first.basis_used,
        consent_id=next((r.consent_id for r in releases if r.consent_id), None),
        dispensation_id=first.dispensation_id,
        routing_problems=tuple(problems),
    )
