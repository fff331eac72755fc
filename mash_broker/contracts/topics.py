"""Topic names, ``<area>.<thing>.v<N>``."""

from __future__ import annotations

POLICE_NOTIFICATIONS = "police.notification.v1"
POLICE_RECEIPTS = "police.receipt.v1"
POLICE_ACKNOWLEDGEMENTS = "police.acknowledgement.v1"
HEALTH_INBOUND = "health.inbound.v1"
CONSENT_RECORDS = "consent.record.v1"
HEALTH_DELIVERIES = "health.delivery.v1"
MASH_DELIVERIES = "mash.delivery.v1"
EDUCATION_INBOUND = "education.inbound.v1"
# The council's and the MASH's own systems (outcomes, s47 requests, looked-after changes, health
# assessment requests), and agencies with no topic of their own (housing, probation, a form).
MASH_INBOUND = "mash.inbound.v1"
EDUCATION_DELIVERIES = "education.delivery.v1"
MASH_QUEUE = "mash.queue.v1"
GATE_QUARANTINE = "gate.quarantine.v1"

# Areas that send to the broker and get receipts on <area>.receipt.v1.
AREAS = frozenset({"police", "health", "education", "school", "la", "mash", "gp", "health_visitor", "school_nurse"})

INBOUND = (POLICE_NOTIFICATIONS, HEALTH_INBOUND, EDUCATION_INBOUND, MASH_INBOUND, CONSENT_RECORDS)
ALL = (
    POLICE_NOTIFICATIONS,
    MASH_INBOUND,
    POLICE_RECEIPTS,
    POLICE_ACKNOWLEDGEMENTS,
    HEALTH_INBOUND,
    EDUCATION_INBOUND,
    EDUCATION_DELIVERIES,
    HEALTH_DELIVERIES,
    MASH_DELIVERIES,
    CONSENT_RECORDS,
    MASH_QUEUE,
    GATE_QUARANTINE,
)


def receipts_topic(sender_org: str) -> str:
    """Where the gate's receipts for a sender go: ``<area>.receipt.v1`` for ``<area>:<org>``."""
    return f"{sender_org.split(':', 1)[0]}.receipt.v1"


# Which delivery topic serves each recipient class; anything else goes to the MASH's.
_DELIVERY_TOPIC = {
    "school": EDUCATION_DELIVERIES,
    "education": EDUCATION_DELIVERIES,
    "health": HEALTH_DELIVERIES,
    "health_visitor": HEALTH_DELIVERIES,
    "school_nurse": HEALTH_DELIVERIES,
    "gp": HEALTH_DELIVERIES,
}


def acknowledgements_topic(sender_org: str) -> str:
    """Where recipients' receipts and reads of a sender's message go: ``<area>.acknowledgement.v1``."""
    return f"{sender_org.split(':', 1)[0]}.acknowledgement.v1"


def delivery_topic(recipient: str) -> str:
    """The topic a gated delivery to ``recipient`` (``<class>:<id>``) is published on."""
    return _DELIVERY_TOPIC.get(recipient.split(":", 1)[0], MASH_DELIVERIES)


# Which inbound topic each sender area publishes on; any other area uses the MASH's.
_INBOUND_TOPIC = {
    "police": POLICE_NOTIFICATIONS,
    "health": HEALTH_INBOUND,
    "gp": HEALTH_INBOUND,
    "health_visitor": HEALTH_INBOUND,
    "school_nurse": HEALTH_INBOUND,
    "school": EDUCATION_INBOUND,
    "education": EDUCATION_INBOUND,
}
CONSENT_KINDS = frozenset({"consent", "consent.dispensation"})


def inbound_topic(sender_org: str, kind: str) -> str:
    """The topic a sender publishes a message of ``kind`` on (consent records have their own)."""
    if kind in CONSENT_KINDS:
        return CONSENT_RECORDS
    return _INBOUND_TOPIC.get(sender_org.split(":", 1)[0], MASH_INBOUND)
