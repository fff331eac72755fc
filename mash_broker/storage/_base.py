"""What the query mixins share: the engine (reads outside a transaction) or the connection (inside one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class Reads:
    """Queries run on a connection of their own, outside any write transaction."""

    engine: AsyncEngine

    async def _all(self, q: Any) -> list[RowMapping]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(q)).mappings().all())

    async def _first(self, q: Any) -> RowMapping | None:
        rows = await self._all(q)
        return rows[0] if rows else None


class Writes:
    """Writes (and reads) on the connection of one transaction."""

    conn: AsyncConnection

    async def _rows(self, q: Any) -> list[RowMapping]:
        return list((await self.conn.execute(q)).mappings().all())
