"""The MASH's inbox: what the gate delivers to a MASH (``mash:<code>``: the police notifications for its
daily triage, in a region the child's home authority's), to the council (``la:<code>``) or to early help
(``early_help:<team>``) lands in its inbox on ``mash.delivery.v1``; its system receipt is recorded once and
acknowledged to the sender of the message delivered, exactly as a school's or a GP's is (a withdrawal notice
for a copy it holds is recorded as the others' are). Its readers are the MASH's own: ``mash queue triage``,
the authority's board and the force's page.

The topic also carries what is not a delivery to the MASH (a clock's alert to an ``la:`` role, a delivery
to a class no agency serves): those are not this inbox's, and are left for their own readers without a
warning per record.
"""

from __future__ import annotations

import json
from datetime import datetime

from mash_broker.contracts import topics
from mash_broker.core import inbox
from mash_broker.core.inbox import Sign
from mash_broker.core.logging import get_logger
from mash_broker.core.ports import WithdrawalNoticeLedger

log = get_logger("mash.inbox")

MASH_CLASSES = frozenset({"la", "mash", "early_help"})
_OURS = frozenset({"delivery", "delivery.withdrawn"})  # the payload kinds an inbox records


async def receive_delivery(
    ledger: WithdrawalNoticeLedger, raw: bytes, now: datetime, *, sign: Sign | None = None
) -> str:
    """Record the MASH's system receipt for one delivery (or that a withdrawal notice for a copy it holds
    reached it), as every inbox does (``core.inbox``). Redeliveries change nothing; a readable record that is
    neither, for the MASH, the council or early help, is ``ignored`` without a warning."""
    if not _may_be_ours(raw):
        log.debug("delivery.not_for_this_inbox", topic=topics.MASH_DELIVERIES)
        return "ignored"
    return await inbox.receive_delivery(
        ledger, raw, now, recipient_classes=MASH_CLASSES, topic=topics.MASH_DELIVERIES, sign=sign
    )


def _may_be_ours(raw: bytes) -> bool:
    """False only for a record whose plain payload is plainly someone else's (a clock alert to an ``la:`` role,
    a delivery to a police referrer); anything else (unreadable, or sealed) the shared inbox judges."""
    try:
        payload = json.loads(raw).get("payload")
    except (ValueError, AttributeError):
        return True
    if not isinstance(payload, dict) or "kind" not in payload:
        return True
    recipient = payload.get("recipient")
    return payload["kind"] in _OURS and isinstance(recipient, str) and topics.area_of(recipient) in MASH_CLASSES
