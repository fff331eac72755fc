"""The region the stack decides in, built once the way `mash up` builds it, for every command and page.

The gate (``app.bootstrap``), `mash gate check | what-if | explain`, `mash replay` and the web pages must
decide (and scope) with the same region: MASH_AREAS_DIR over the deployment's policy and calendar.
"""

from __future__ import annotations

from mash_broker.agencies.registry import REGISTRY
from mash_broker.core.area_files import region_of
from mash_broker.core.areas import Region
from mash_broker.core.clocks import load_calendar
from mash_broker.core.policy import LoadedPolicy, load_policy
from mash_broker.core.settings import Settings


def deployed_region(settings: Settings, policy: LoadedPolicy | None = None) -> Region | None:
    """MASH_AREAS_DIR over ``policy`` (else MASH_POLICY_FILE) and the deployment's calendar, exactly as
    ``app.bootstrap`` loads it; None without a region. A MashError (PolicyError) names the file and field."""
    loaded = policy or load_policy(settings.policy_file, REGISTRY.policy_kinds)
    calendar = load_calendar(settings.school_calendar, settings.timezone)
    return region_of(settings, loaded, calendar, REGISTRY.policy_kinds)
