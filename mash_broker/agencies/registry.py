"""The one list of agencies. Every topic list, subscription, publisher, inbox and the policy's known
kinds are derived from it (``REGISTRY``); adding an agency is one folder and one line here."""

from __future__ import annotations

from mash_broker.agencies.education.agency import EDUCATION
from mash_broker.agencies.health.agency import HEALTH
from mash_broker.agencies.mash.agency import MASH
from mash_broker.agencies.police.agency import POLICE
from mash_broker.agencies.probation.agency import PROBATION
from mash_broker.core.agency import Agency
from mash_broker.core.registry import Registry

# Order matters only where two agencies derive recipients for one message: their recipients and trace
# lines follow this order (the school, then the health team, for a domestic abuse notification).
AGENCIES: tuple[Agency, ...] = (MASH, POLICE, EDUCATION, HEALTH, PROBATION)

REGISTRY = Registry(AGENCIES)
