"""Which health team serves a child, for routing a domestic abuse notification to health. Pure.

Health visitors serve children under five by where they live (the postcode district); school nurses
serve school-age children by their school. The home postcode is used here for routing only: no
health agreement releases it. The directory is loaded by ``agencies.health.teams``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# A child under this age is a health visitor's; from it, the school nurse's (DOMAIN: under-fives).
SCHOOL_NURSE_FROM_AGE = 5


def postcode_district(postcode: str | None) -> str | None:
    """The outward code ("ZZ99" of "ZZ99 1AA"), upper case; None if there is no plausible postcode."""
    if not postcode:
        return None
    compact = postcode.replace(" ", "").upper()
    if not 5 <= len(compact) <= 7 or not compact.isalnum():
        return None
    return compact[:-3]


@dataclass(frozen=True)
class HealthTeams:
    """School URN -> ``school_nurse:<team>``; postcode district -> ``health_visitor:<team>``."""

    school_nurses: Mapping[str, str] = field(default_factory=dict)
    health_visitors: Mapping[str, str] = field(default_factory=dict)

    def for_child(self, age: int | None, school_urn: str | None, postcode: str | None) -> str | None:
        """The one team that serves this child, by age; None if the directory names none."""
        if age is None:
            return None
        if age < SCHOOL_NURSE_FROM_AGE:
            district = postcode_district(postcode)
            return self.health_visitors.get(district) if district else None
        return self.school_nurses.get(school_urn) if school_urn else None


NO_HEALTH_TEAMS = HealthTeams()
