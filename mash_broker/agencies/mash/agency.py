"""The MASH as a plug-in: outcomes, s47 requests, looked-after changes and health assessment requests
come from the council and the hub on ``mash.inbound.v1``, as do contacts from agencies without a topic
of their own (housing); whatever goes to a recipient class no agency serves lands on ``mash.delivery.v1``.
What is delivered to the MASH, the council or early help is received in the MASH's inbox (``inbox``), so it is
marked delivered and acknowledged like every other recipient's.
"""

from __future__ import annotations

from mash_broker.agencies.mash.inbox import MASH_CLASSES, receive_delivery
from mash_broker.contracts import topics
from mash_broker.core.agency import Agency

MASH = Agency(
    name="mash",
    sender_areas=frozenset({"la", "mash", "housing"}),
    recipient_classes=MASH_CLASSES,
    inbound_topic=topics.MASH_INBOUND,
    delivery_topic=topics.MASH_DELIVERIES,
    sends=frozenset(
        {"contact", "outcome", "care.looked_after_change", "health.assessment_request", "s47.info_request"}
    ),
    receives=frozenset({"contact", "notification.encompass", "s47.gp_report", "health.assessment_completed"}),
    inbox=receive_delivery,
    inbox_description=(
        "Deliveries to a MASH (a region's authority's police notifications for triage), the council and early "
        "help land in the MASH's inbox: recorded as received and acknowledged to their sender."
    ),
)
