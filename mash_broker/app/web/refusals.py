"""Putting a refused page or notification on the audited log (``web.access_refused``).

A person signed in asked for something across their boundary: another school's notification, a page of
another role, or (in a region) another authority's board or notification. The refusal records who asked,
from which organisation, what they tried and whose it was (``area``: the authority it belongs to, in a
region), so it can be shown on the board later, not only found in a log file. Only what exists is
recorded: an id that names nothing, or a code that is no authority, is only logged, so guessing cannot
fill the ledger. Metadata only: never a child's name or the content.
"""

from __future__ import annotations

from datetime import datetime

from mash_broker.app.web.accounts import Account
from mash_broker.storage import Ledger


async def refuse_delivery(ledger: Ledger, account: Account, asked: str, action: str, now: datetime) -> None:
    """``account`` asked for delivery ``asked`` (``open`` or ``mark_read``) and it is not theirs."""
    other = await ledger.delivery(asked.strip().lower()[:36])
    if other is None:
        return
    queued = [
        e.detail
        for e in await ledger.events_of(other.message_id)
        if e.event_type == "delivery.queued" and e.detail.get("delivery_id") == other.delivery_id
    ]
    area = {"area": str(queued[0]["area"])} if queued and queued[0].get("area") else {}
    async with ledger.transaction() as tx:
        await tx.event(
            "web.access_refused",
            other.message_id,
            now,
            delivery_id=other.delivery_id,
            recipient=other.recipient,
            asked_by=account.name,
            asked_by_org=account.org,
            action=action,
            **area,
        )


async def refuse_page(ledger: Ledger, account: Account, page: str, owner: str, area: str | None, now: datetime) -> None:
    """``account`` asked for ``page`` (an existing page of ``owner``: ``mash:<code>``, ``mash``, ``school``)."""
    async with ledger.transaction() as tx:
        await tx.event(
            "web.access_refused",
            None,
            now,
            delivery_id=None,
            page=page,
            recipient=owner,
            asked_by=account.name,
            asked_by_org=account.org,
            action="open",
            **({"area": area} if area else {}),
        )
