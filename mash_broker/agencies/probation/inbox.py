"""Probation's inbox: a gated delivery (the outcome of a practitioner's contact) lands in the probation
delivery unit's inbox; its system receipt (and a named practitioner's read) is recorded once and
acknowledged to the sender of the message delivered, the MASH (``la.acknowledgement.v1``)."""

from __future__ import annotations

from datetime import datetime

from mash_broker.agencies.probation import PROBATION_CLASSES, PROBATION_DELIVERIES
from mash_broker.core import inbox
from mash_broker.core.inbox import Sign
from mash_broker.core.ports import WithdrawalNoticeLedger


async def receive_delivery(
    ledger: WithdrawalNoticeLedger, raw: bytes, now: datetime, *, sign: Sign | None = None
) -> str:
    """Record a probation system's receipt for one delivery. Redeliveries change nothing."""
    return await inbox.receive_delivery(
        ledger, raw, now, recipient_classes=PROBATION_CLASSES, topic=PROBATION_DELIVERIES, sign=sign
    )
