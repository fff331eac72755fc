"""Health adapter I/O: gated deliveries land in health teams' and GP practices' inboxes.

The same inbox as the schools' (``adapters.inbox``): the health side records the system receipt once
and a named person's read once, and each is acknowledged to the sender of the message delivered
(police for a domestic abuse notification, the local authority for a looked-after change, an initial
health assessment request or a s47 request). Health has no directory of named readers here: the
reader is whoever the practice or team's system says read it, recorded by name.
"""

from __future__ import annotations

from datetime import datetime

from mash_broker.agencies.health import HEALTH_CLASSES, HEALTH_DELIVERIES
from mash_broker.core import inbox
from mash_broker.core.inbox import ReadRecorded, Sign
from mash_broker.core.ports import InboxLedger, WithdrawalNoticeLedger


async def receive_delivery(
    ledger: WithdrawalNoticeLedger, raw: bytes, now: datetime, *, sign: Sign | None = None
) -> str:
    """Record a health system's receipt for one delivery. Redeliveries change nothing."""
    return await inbox.receive_delivery(
        ledger, raw, now, recipient_classes=HEALTH_CLASSES, topic=HEALTH_DELIVERIES, sign=sign
    )


async def record_read(
    ledger: InboxLedger, recipient: str, message_id: str, by: str, now: datetime, *, sign: Sign | None = None
) -> ReadRecorded:
    """A named person at ``recipient`` (e.g. ``gp:A12345``) read a delivery: recorded once, acknowledged."""
    row = await inbox.resolve_delivery(ledger, recipient, message_id)
    return await inbox.acknowledge_read(ledger, row, by.strip(), now, sign=sign)
