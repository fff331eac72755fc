"""What an operator watches, read from the ledger: the figures behind /metrics and the probe's trivial read.

Each figure is one grouped query over a table the gate already writes (decisions, quarantine, outbox,
clocks, deliveries), so the counts are the audited record's, whichever process wrote it. The app
caches them for a few seconds between scrapes. Labels are bounded: verdicts, reasons, topics, clock
names and agencies; a recipient (``school:900001``) is folded into its agency (``school``).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, func, literal, or_, select

from mash_broker.core.ports import LedgerFigures
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads

if TYPE_CHECKING:
    from mash_broker.core.ports import ObservedLedger


def agency_of(recipient: str) -> str:
    """``school:900001`` -> ``school``: the bounded part of an organisation id."""
    return recipient.split(":", 1)[0]


def _primary_reason(reasons: Any) -> str:
    """The first reason of a decision's list (stored as JSON text on SQLite, JSON on PostgreSQL)."""
    found = json.loads(reasons) if isinstance(reasons, str) else reasons
    return str(found[0]) if isinstance(found, list) and found else "none"


class MetricsReads(Reads):
    async def ledger_answers(self) -> bool:
        """A trivial read succeeded (an exception is the answer otherwise)."""
        row = await self._first(select(literal(1).label("one")))
        return row is not None and int(row["one"]) == 1

    async def figures(self, now: datetime) -> LedgerFigures:
        """The ledger's counts now: a handful of grouped queries, cheap next to a scrape interval."""
        d, q, o, c, dl = t.decisions.c, t.quarantine.c, t.outbox.c, t.clocks.c, t.deliveries.c
        decisions: Counter[tuple[str, str]] = Counter()
        for r in await self._all(
            select(d.verdict, cast(d.reasons, String).label("reasons"), func.count().label("n")).group_by(
                d.verdict, cast(d.reasons, String)
            )
        ):
            decisions[(str(r["verdict"]), _primary_reason(r["reasons"]))] += int(r["n"])
        quarantines = {
            str(r["reason_code"]): int(r["n"])
            for r in await self._all(select(q.reason_code, func.count().label("n")).group_by(q.reason_code))
        }
        waiting = (o.published_at.is_(None), o.cancelled_at.is_(None))
        depth = {
            str(r["topic"]): int(r["n"])
            for r in await self._all(select(o.topic, func.count().label("n")).where(*waiting).group_by(o.topic))
        }
        due = func.coalesce(o.not_before, o.created_at)
        oldest = {
            str(r["topic"]): r["due"]
            for r in await self._all(
                select(o.topic, func.min(due).label("due"))
                .where(*waiting, or_(o.not_before.is_(None), o.not_before <= now))
                .group_by(o.topic)
            )
        }
        clocks = await self._all(
            select(
                c.name, func.count(c.warned_at).label("warned"), func.count(c.breached_at).label("breached")
            ).group_by(c.name)
        )
        unacked: Counter[str] = Counter()
        unread: Counter[str] = Counter()
        open_deliveries = select(
            dl.recipient, func.count(dl.delivered_at).label("delivered"), func.count().label("n")
        ).where(dl.withdrawn_at.is_(None), dl.read_at.is_(None))
        for r in await self._all(open_deliveries.group_by(dl.recipient)):
            agency = agency_of(str(r["recipient"]))
            unacked[agency] += int(r["n"]) - int(r["delivered"])
            unread[agency] += int(r["delivered"])
        return LedgerFigures(
            decisions=dict(decisions),
            quarantines=quarantines,
            outbox_depth=depth,
            outbox_oldest={k: self._aware(v) for k, v in oldest.items() if v is not None},
            clock_warnings={str(r["name"]): int(r["warned"]) for r in clocks},
            clock_breaches={str(r["name"]): int(r["breached"]) for r in clocks},
            unacknowledged=dict(unacked),
            unread=dict(unread),
        )

    @staticmethod
    def _aware(value: Any) -> datetime:
        """min() over a UtcDateTime column comes back as the driver gives it: made an aware UTC datetime."""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return t.UtcDateTime().process_result_value(moment, _NO_DIALECT) or moment

    async def published_since(self, since: datetime, limit: int = 10_000) -> list[tuple[datetime, datetime]]:
        """(due, published) of outbox records published after ``since``, oldest publication first."""
        o = t.outbox.c
        rows = await self._all(
            select(o.created_at, o.not_before, o.published_at)
            .where(o.published_at > since)
            .order_by(o.published_at)
            .limit(limit)
        )
        return [(r["not_before"] or r["created_at"], r["published_at"]) for r in rows]

    async def outbox_headers(self, outbox_id: uuid.UUID) -> dict[str, str] | None:
        row = await self._first(select(t.outbox.c.headers).where(t.outbox.c.outbox_id == str(outbox_id)))
        return None if row is None else {str(k): str(v) for k, v in dict(row["headers"]).items()}


_NO_DIALECT: Any = None  # UtcDateTime's result conversion does not look at the dialect

if TYPE_CHECKING:

    def _implements(reads: MetricsReads) -> ObservedLedger:
        return reads
