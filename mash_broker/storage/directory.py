"""The school directory: schools and their Key Adults, replaced school by school when loaded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from mash_broker.core.records import KeyAdult, School
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.rows import key_adult, school


class DirectoryWrites(Writes):
    async def known_school_urns(self) -> frozenset[str]:
        return frozenset((await self.conn.execute(select(t.schools.c.urn))).scalars())

    async def replace_directory(
        self, schools: Iterable[tuple[str, str, str, list[tuple[str, str]]]], at: datetime
    ) -> int:
        """Upsert schools and replace each loaded school's Key Adults. Returns schools loaded."""
        n = 0
        for urn, name, la_code, adults in schools:
            await self.conn.execute(t.schools.delete().where(t.schools.c.urn == urn))
            await self.conn.execute(t.key_adults.delete().where(t.key_adults.c.urn == urn))
            await self.conn.execute(t.schools.insert().values(urn=urn, name=name, la_code=la_code, loaded_at=at))
            for adult_name, email in adults:
                await self.conn.execute(t.key_adults.insert().values(urn=urn, email=email, name=adult_name))
            n += 1
        return n


class DirectoryReads(Reads):
    async def known_school_urns(self) -> frozenset[str]:
        return frozenset(r["urn"] for r in await self._all(select(t.schools.c.urn)))

    async def school(self, urn: str) -> School | None:
        row = await self._first(select(t.schools).where(t.schools.c.urn == urn))
        return school(row) if row is not None else None

    async def school_names(self) -> dict[str, str]:
        """Every school's name by URN."""
        return {r["urn"]: r["name"] for r in await self._all(select(t.schools.c.urn, t.schools.c.name))}

    async def key_adults(self, urn: str) -> list[KeyAdult]:
        return [key_adult(r) for r in await self._all(select(t.key_adults).where(t.key_adults.c.urn == urn))]
