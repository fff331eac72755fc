"""Police as a plug-in: it sends Operation Encompass notifications (and contacts) on its own topic and
hears back on ``police.receipt.v1`` and ``police.acknowledgement.v1``. Outcomes fed back to police (the
``referrer-outcome-police`` agreement) go on the MASH's delivery topic: police have no inbox here."""

from __future__ import annotations

from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.core.agency import Agency

POLICE = Agency(
    name="police",
    sender_areas=frozenset({"police"}),
    inbound_topic=POLICE_NOTIFICATIONS,
    sends=frozenset({"notification.encompass", "contact"}),
    receives=frozenset({"outcome"}),
)
