"""What `mash demo` says about its region: two authorities, what each one's schools receive, and each
authority's MASH with its own queue and the police notifications it triages, received in its inbox (a
cross-border child in both)."""

from __future__ import annotations

import json
from collections import defaultdict

from mash_broker.agencies.registry import REGISTRY
from mash_broker.core.area_files import region_of
from mash_broker.core.areas import Region
from mash_broker.core.clocks import load_calendar
from mash_broker.core.policy import load_policy
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger


def demo_region(settings: Settings) -> Region:
    policy = load_policy(settings.policy_file, REGISTRY.policy_kinds)
    region = region_of(
        settings, policy, load_calendar(settings.school_calendar, settings.timezone), REGISTRY.policy_kinds
    )
    assert region is not None  # the demo sets its own areas folder
    return region


def region_lines(region: Region) -> list[str]:
    """The region in a few lines: each authority, its policy, its school agreement's fields, its closures."""
    lines = [f"region {region.name}: one export from {', '.join(region.forces)} for {len(region.areas)} authorities"]
    for area in region.areas.values():
        school = next(
            a
            for a in area.policy.policy.agreements
            if a.recipient_class == "school" and a.purpose == "operation_encompass"
        )
        fields = ", ".join(f.split(".", 1)[1] for f in school.released_fields)
        closed = sorted(d for d in area.calendar.closures if d.year == 2026 and d.month == 11)
        extra = f"; closed {', '.join(d.isoformat() for d in closed)} (INSET)" if closed else ""
        lines.append(
            f"  authority {area.code} {area.name}: policy {area.policy.policy.version}; schools get {fields}{extra}"
        )
    return lines


async def school_line(ledger: Ledger, region: Region, urn: str) -> str:
    """Which authority a school is in, and the fields its notifications carried."""
    info = await ledger.school(urn)
    code = info.la_code if info else "?"
    fields: set[str] = set()
    for row in await ledger.deliveries_for(f"school:{urn}"):
        fields |= set(json.loads(row.envelope)["payload"]["released"])
    shown = ", ".join(sorted(f.split(".", 1)[1] for f in fields)) or "nothing yet"
    return f"   authority {code}'s agreement and calendar: released {shown}"


async def mash_lines(ledger: Ledger, region: Region) -> list[str]:
    """Each authority's MASH: its queue, the notifications it triages, and the cross-border children among them."""
    schools = {s[0]: s[2] for s in await ledger.directory_entries()}
    by_message: dict[str, list[str]] = defaultdict(list)
    for row in await ledger.all_deliveries():
        by_message[row.message_id].append(row.recipient)
    lines = []
    for area in region.areas.values():
        triage = await ledger.deliveries_for(area.mash)
        queue = await ledger.queue(area.mash)
        crossing = []
        for row in triage:
            urns = [r.split(":", 1)[1] for r in by_message[row.message_id] if r.startswith("school:")]
            crossing += [
                f"{row.message_id[:8]} (school {u}, authority {schools.get(u)})"
                for u in urns
                if schools.get(u) != area.code
            ]
        lines.append(
            f"   {area.mash} ({area.name}): {len(triage)} police notifications for triage "
            f"({sum(r.delivered_at is not None for r in triage)} received in its inbox), {len(queue)} to route"
            + (f"; cross-border: {', '.join(crossing)}" if crossing else "")
        )
    return lines
