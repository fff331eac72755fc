"""The gate's own topic names and the naming rule, ``<area>.<thing>.v<N>``.

Each agency's own topics live in its folder (``mash_broker/agencies/<name>/``); the lists the running
stack uses (inbound, delivery, everything to create) are derived from the agencies by
``mash_broker.core.registry.Registry``.
"""

from __future__ import annotations

CONSENT_RECORDS = "consent.record.v1"
# The council's and the MASH's own systems (outcomes, s47 requests, looked-after changes, health
# assessment requests), and agencies with no topic of their own (housing, probation, a form).
MASH_INBOUND = "mash.inbound.v1"
# Deliveries to a recipient class no agency's delivery topic serves.
MASH_DELIVERIES = "mash.delivery.v1"
MASH_QUEUE = "mash.queue.v1"
GATE_QUARANTINE = "gate.quarantine.v1"

# Kinds recorded by the consent service, on their own topic whoever sends them.
CONSENT_KINDS = frozenset({"consent", "consent.dispensation"})


def area_of(org: str) -> str:
    """The ``<area>`` of an ``<area>:<org>`` id."""
    return org.split(":", 1)[0]


def receipts_topic(sender_org: str) -> str:
    """Where the gate's receipts for a sender go: ``<area>.receipt.v1`` for ``<area>:<org>``."""
    return f"{area_of(sender_org)}.receipt.v1"


def acknowledgements_topic(sender_org: str) -> str:
    """Where recipients' receipts and reads of a sender's message go: ``<area>.acknowledgement.v1``."""
    return f"{area_of(sender_org)}.acknowledgement.v1"
