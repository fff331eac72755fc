"""The school directory: schools and their Key Adults, read whole and changed row by row when loaded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, select, update

from mash_broker.core.records import KeyAdult, School
from mash_broker.storage import schema as t
from mash_broker.storage._base import Reads, Writes
from mash_broker.storage.rows import key_adult, school

DirectoryEntry = tuple[str, str, str, list[tuple[str, str]]]  # urn, name, la_code, [(Key Adult name, email)]


@dataclass(frozen=True)
class DirectoryUpdate:
    """The rows a directory load writes: schools and Key Adults to add or update, and those to remove."""

    schools: Sequence[tuple[str, str, str]] = ()  # (urn, name, la_code), each stamped loaded_at
    key_adults: Sequence[tuple[str, str, str]] = ()  # (urn, email, name)
    removed_key_adults: Sequence[tuple[str, str]] = ()  # (urn, email)
    removed_schools: Sequence[str] = ()  # urn; their Key Adults go with them


def _entries(schools: list[RowMapping], adults: list[RowMapping]) -> list[DirectoryEntry]:
    by_urn: dict[str, list[tuple[str, str]]] = {r["urn"]: [] for r in schools}
    for r in adults:
        by_urn.setdefault(r["urn"], []).append((r["name"], r["email"]))
    return [(r["urn"], r["name"], r["la_code"], by_urn[r["urn"]]) for r in schools]


_SCHOOLS = select(t.schools).order_by(t.schools.c.urn)
_KEY_ADULTS = select(t.key_adults).order_by(t.key_adults.c.urn, t.key_adults.c.email)


class DirectoryWrites(Writes):
    async def known_school_urns(self) -> frozenset[str]:
        return frozenset((await self.conn.execute(select(t.schools.c.urn))).scalars())

    async def directory_entries(self) -> list[DirectoryEntry]:
        """The whole directory, as this transaction sees it: schools by URN, Key Adults by email."""
        return _entries(await self._rows(_SCHOOLS), await self._rows(_KEY_ADULTS))

    async def apply_directory(self, change: DirectoryUpdate, at: datetime) -> None:
        """Write a planned directory change: upsert what it lists, delete only what it names."""
        for urn in change.removed_schools:
            await self.conn.execute(t.key_adults.delete().where(t.key_adults.c.urn == urn))
            await self.conn.execute(t.schools.delete().where(t.schools.c.urn == urn))
        for urn, email in change.removed_key_adults:
            await self.conn.execute(
                t.key_adults.delete().where(t.key_adults.c.urn == urn, t.key_adults.c.email == email)
            )
        for urn, name, la_code in change.schools:
            values = {"name": name, "la_code": la_code, "loaded_at": at}
            res = await self.conn.execute(update(t.schools).where(t.schools.c.urn == urn).values(**values))
            if not res.rowcount:
                await self.conn.execute(t.schools.insert().values(urn=urn, **values))
        for urn, email, adult_name in change.key_adults:
            res = await self.conn.execute(
                update(t.key_adults)
                .where(t.key_adults.c.urn == urn, t.key_adults.c.email == email)
                .values(name=adult_name)
            )
            if not res.rowcount:
                await self.conn.execute(t.key_adults.insert().values(urn=urn, email=email, name=adult_name))

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

    async def directory_entries(self) -> list[DirectoryEntry]:
        """The whole directory: schools by URN, each with its Key Adults by email."""
        return _entries(await self._all(_SCHOOLS), await self._all(_KEY_ADULTS))

    async def school(self, urn: str) -> School | None:
        row = await self._first(select(t.schools).where(t.schools.c.urn == urn))
        return school(row) if row is not None else None

    async def school_names(self) -> dict[str, str]:
        """Every school's name by URN."""
        return {r["urn"]: r["name"] for r in await self._all(select(t.schools.c.urn, t.schools.c.name))}

    async def key_adults(self, urn: str) -> list[KeyAdult]:
        return [key_adult(r) for r in await self._all(select(t.key_adults).where(t.key_adults.c.urn == urn))]
