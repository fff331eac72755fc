"""Web sign-in accounts and the MASH board's queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from mash_broker.core.records import ClockRecord, KeyAdult, WebAccountRecord
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.reads import area_deliveries, area_messages, detail_text
from mash_broker.storage.rows import clock_record, key_adult, web_account


class WebWrites(Writes):
    async def set_web_account(
        self, *, login: str, role: str, urn: str | None, name: str, password_hash: str, at: datetime
    ) -> None:
        """Set (or replace) the account with this login."""
        await self.conn.execute(t.web_accounts.delete().where(t.web_accounts.c.login == login))
        await self.conn.execute(
            t.web_accounts.insert().values(
                login=login, role=role, urn=urn, name=name, password_hash=password_hash, updated_at=at
            )
        )


class WebReads(Reads):
    async def web_account(self, login: str) -> WebAccountRecord | None:
        """The account with this (casefolded) login, or None."""
        row = await self._first(select(t.web_accounts).where(t.web_accounts.c.login == login))
        return web_account(row) if row is not None else None

    async def key_adults_with_email(self, email: str) -> list[KeyAdult]:
        """Every school's Key Adult the directory lists with this email (compared casefolded)."""
        login = email.casefold()
        q = select(t.key_adults).where(func.lower(t.key_adults.c.email) == login.lower())
        return [key_adult(r) for r in await self._all(q) if r["email"].casefold() == login]

    async def refused_access_since(
        self, since: datetime, limit: int = 200, *, area: str | None = None
    ) -> list[tuple[datetime, dict[str, Any]]]:
        """``web.access_refused`` entries of the audited log since then, newest first: (at, detail). With
        ``area``, only the refusals of that authority's pages and notifications (selected in SQL)."""
        c = t.events.c
        q = select(c.at, c.detail).where(c.event_type == "web.access_refused", c.at >= since)
        if area is not None:
            q = q.where(or_(detail_text("area") == area, detail_text("delivery_id").in_(area_deliveries(area))))
        q = q.order_by(c.seq.desc()).limit(limit)
        return [(r["at"], dict(r["detail"])) for r in await self._all(q)]

    async def clocks_past_warning(self, now: datetime, *, area: str | None = None) -> list[ClockRecord]:
        """Running clocks past their warning time or deadline, or already warned or breached. With ``area``,
        only the clocks of that authority's messages and deliveries (selected in SQL)."""
        c = t.clocks.c
        q = select(t.clocks).where(
            c.stopped_at.is_(None),
            or_(c.warn_at <= now, c.due_at <= now, c.warned_at.is_not(None), c.breached_at.is_not(None)),
        )
        if area is not None:
            q = q.where(or_(c.subject_id.in_(area_deliveries(area)), c.subject_id.in_(area_messages(area))))
        return [clock_record(r) for r in await self._all(q)]
