"""Probation as a plug-in (the fourth agency): ``probation:<org>`` sends contacts on ``mash.inbound.v1``
and gets receipts on ``probation.receipt.v1``; outcomes come back on ``probation.delivery.v1``."""

from __future__ import annotations

from mash_broker.agencies.probation import PROBATION_CLASSES, PROBATION_DELIVERIES
from mash_broker.agencies.probation.inbox import receive_delivery
from mash_broker.core.agency import Agency

PROBATION = Agency(
    name="probation",
    sender_areas=frozenset({"probation"}),
    recipient_classes=PROBATION_CLASSES,
    delivery_topic=PROBATION_DELIVERIES,
    sends=frozenset({"contact"}),
    receives=frozenset({"outcome"}),
    inbox=receive_delivery,
    inbox_description="Outcomes of probation practitioners' contacts land in the probation delivery unit's inbox.",
)
