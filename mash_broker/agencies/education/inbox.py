"""Education adapter I/O: gated deliveries land in each school's inbox; receipts and reads go to police.

The inbox is the ``deliveries`` row for ``school:<URN>`` in the ledger: the education side records the
system receipt (delivered) and the person-read acknowledgement there (``adapters.inbox``, shared with
health), and each goes back to the sender. A reader must be one of the school's Key Adults. A content-free
``delivery.withdrawn`` notice (a correction or withdrawal by police, ``core.corrections``) is recorded too.
"""

from __future__ import annotations

from datetime import datetime

from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.contracts import NotFound
from mash_broker.core import inbox
from mash_broker.core.inbox import ReadRecorded, Sign
from mash_broker.core.ports import InboxLedger, WithdrawalNoticeLedger
from mash_broker.core.records import DeliveryRecord

__all__ = ["Sign", "receive_delivery", "record_read", "resolve_delivery"]


async def receive_delivery(
    ledger: WithdrawalNoticeLedger, raw: bytes, now: datetime, *, sign: Sign | None = None
) -> str:
    """Record a school's system receipt for one delivery, or that a withdrawal notice reached it (the copy
    is hidden from its inbox from then on). Redeliveries change nothing."""
    return await inbox.receive_delivery(
        ledger, raw, now, recipient_classes=("school",), topic=EDUCATION_DELIVERIES, sign=sign
    )


async def resolve_delivery(ledger: InboxLedger, urn: str, message_id: str) -> DeliveryRecord:
    """A delivery in this school's inbox, by full id or a unique prefix of at least 8 characters."""
    try:
        return await inbox.resolve_delivery(ledger, f"school:{urn}", message_id)
    except NotFound:
        raise NotFound(f"no notification {message_id} in school {urn}'s inbox", record=f"school {urn}") from None


async def record_read(
    ledger: InboxLedger, urn: str, message_id: str, by: str, now: datetime, *, sign: Sign | None = None
) -> ReadRecorded:
    """A Key Adult read a notification: recorded once, and a person-read acknowledgement goes to police."""
    adults = await ledger.key_adults(urn)
    names = {a.name.casefold(): a.name for a in adults}
    if by.strip().casefold() not in names:
        raise NotFound(
            f"{len(adults)} Key Adults are on record for school {urn}; the reader is not one",
            record=f"school {urn}",
            field="by",
        )
    row = await resolve_delivery(ledger, urn, message_id)
    return await inbox.acknowledge_read(ledger, row, names[by.strip().casefold()], now, sign=sign)
