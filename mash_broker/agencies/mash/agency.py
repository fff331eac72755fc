"""The MASH as a plug-in: outcomes, s47 requests, looked-after changes and health assessment requests
come from the council and the hub on ``mash.inbound.v1``, as do contacts from agencies without a topic
of their own (housing); whatever goes to a recipient class no agency serves lands on ``mash.delivery.v1``.
"""

from __future__ import annotations

from mash_broker.contracts import topics
from mash_broker.core.agency import Agency

MASH = Agency(
    name="mash",
    sender_areas=frozenset({"la", "mash", "housing"}),
    recipient_classes=frozenset({"la", "mash", "early_help"}),
    inbound_topic=topics.MASH_INBOUND,
    delivery_topic=topics.MASH_DELIVERIES,
    sends=frozenset(
        {"contact", "outcome", "care.looked_after_change", "health.assessment_request", "s47.info_request"}
    ),
    receives=frozenset({"contact", "notification.encompass", "s47.gp_report", "health.assessment_completed"}),
)
