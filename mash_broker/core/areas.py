"""A region: one police force, several local authorities, each a tenant with its own rules.

Each local authority (its three-digit code, the school directory's ``la_code``) has its own sharing agreements
(the regional policy with its own overrides), school calendar, Encompass times, MASH and advice queues
(``mash:<code>``, ``advice:<code>``), clocks (the deployment's declared clocks with its own times,
warnings, calendar and escalation), board and figures. A child's home authority is found from the home
postcode through a table of postcode districts (or sectors, where a district straddles a boundary).

Configuration is data (``core.area_files`` reads it from ``MASH_AREAS_DIR``); no areas configured means one
area, exactly as before. Pure: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time

from mash_broker.core.agency import Timing
from mash_broker.core.clocks import SchoolCalendar
from mash_broker.core.clocks.declared import ClockSpec
from mash_broker.core.policy import LoadedPolicy

AREA_CODE = re.compile(r"[0-9]{3}")
# The regional queues: work no single authority owns (a child whose home authority is not known). They keep
# the single-area names, so the regional manager (the web account ``mash``) sees them as before.
REGIONAL_MASH_QUEUE = "mash"
REGIONAL_ADVICE_QUEUE = "advice"
# Recipient and queue classes whose id is an authority's code: ``mash:929``, ``la:929``, ``advice:929``.
AUTHORITY_CLASSES = frozenset({"mash", "la", "advice", "early_help"})


@dataclass(frozen=True)
class Area:
    """One local authority of the region."""

    code: str
    name: str
    policy: LoadedPolicy  # the regional policy with this authority's overrides (or the regional one itself)
    calendar: SchoolCalendar
    notify_by: time
    school_day_starts: time
    # Its clocks (the deployment's with its ``clocks.toml`` changes); None: the deployment's as they are.
    clocks: tuple[ClockSpec, ...] | None = None
    clocks_source: str = ""

    @property
    def mash(self) -> str:
        """Its MASH: the recipient of police notifications for its daily triage, and its routing queue."""
        return f"mash:{self.code}"

    @property
    def advice(self) -> str:
        return f"advice:{self.code}"

    @property
    def queues(self) -> tuple[str, str]:
        return (self.mash, self.advice)

    @property
    def timing(self) -> Timing:
        return Timing(self.calendar, self.notify_by, self.school_day_starts)


@dataclass(frozen=True)
class Region:
    """The authorities of one region and the table that finds a child's home authority."""

    name: str
    policy: LoadedPolicy  # the regional default
    areas: Mapping[str, Area]
    # Postcode district ("ZZ99") or sector ("ZZ99 3") -> authority code; the most specific entry wins.
    districts: Mapping[str, str]
    forces: tuple[str, ...] = ()
    source: str = ""
    regional: Timing | None = None  # the regional calendar and times, when region.toml sets its own

    def area(self, code: str | None) -> Area | None:
        return self.areas.get(code) if code is not None else None

    def home_authority(self, postcode: str | None) -> str | None:
        """The authority of a home postcode: by full postcode, sector or district; None if not in the table."""
        if not postcode:
            return None
        outward, _, inward = " ".join(postcode.upper().split()).partition(" ")
        if not inward and len(outward) > 4:  # written without its space: the inward part is the last three
            outward, inward = outward[:-3], outward[-3:]
        for key in (f"{outward} {inward}", f"{outward} {inward[:1]}", outward):
            if key in self.districts:
                return self.districts[key]
        return None

    def authority_of(self, org: str, schools: Mapping[str, str]) -> str | None:
        """Whose organisation ``org`` is: a school by its directory ``la_code``, ``mash:``/``la:``/``advice:``
        by its code; None for an organisation of no single authority (a health team, the force)."""
        cls, _, ident = org.partition(":")
        code = schools.get(ident) if cls == "school" else ident if cls in AUTHORITY_CLASSES else None
        return code if code in self.areas else None

    def queue_of(self, queue: str, code: str | None) -> str:
        """The gate's queue name (``mash`` or ``advice``) for authority ``code`` (None: the regional queue)."""
        area = self.area(code)
        if area is None:
            return queue
        return area.advice if queue == REGIONAL_ADVICE_QUEUE else area.mash

    def timing(self, code: str | None, deployment: Timing) -> Timing:
        """Authority ``code``'s calendar and times; else the regional ones (else the deployment's)."""
        area = self.area(code)
        return area.timing if area is not None else self.regional or deployment

    @property
    def policies(self) -> tuple[LoadedPolicy, ...]:
        """Every policy version the region decides under, regional first: each is recorded in the ledger."""
        found = {self.policy.policy.version: self.policy}
        for area in self.areas.values():
            found.setdefault(area.policy.policy.version, area.policy)
        return tuple(found.values())


def area_of_queue(queue: str) -> str | None:
    """``mash:929`` -> ``929``; a regional (or single-area) queue -> None."""
    cls, _, code = queue.partition(":")
    return code if cls in AUTHORITY_CLASSES and AREA_CODE.fullmatch(code) else None
