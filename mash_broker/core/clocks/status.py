"""Where each clock stands, read from the ledger's `clocks` table (for `mash clocks list` and explain)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import select

from mash_broker.storage import Ledger
from mash_broker.storage import schema as t


class ClockState(StrEnum):
    """A clock's state, most advanced first: stopped beats breached beats warned."""

    RUNNING = "running"
    WARNED = "warned"
    BREACHED = "breached"
    STOPPED = "stopped"


def state_of(row: dict[str, Any]) -> ClockState:
    if row["stopped_at"] is not None:
        return ClockState.STOPPED
    if row["breached_at"] is not None:
        return ClockState.BREACHED
    if row["warned_at"] is not None:
        return ClockState.WARNED
    return ClockState.RUNNING


async def list_clocks(
    ledger: Ledger, state: ClockState | None = None, *, subject_id: str | None = None
) -> list[dict[str, Any]]:
    """Clocks, soonest deadline first, each with its `state`; only those in ``state`` / for ``subject_id``."""
    q = select(t.clocks).order_by(t.clocks.c.due_at, t.clocks.c.clock_id)
    if subject_id is not None:
        q = q.where(t.clocks.c.subject_id == subject_id)
    async with ledger.reader() as tx:
        rows = [dict(r) for r in (await tx.conn.execute(q)).mappings()]
    listed = [{**r, "state": state_of(r).value} for r in rows]
    return [r for r in listed if state is None or r["state"] == state.value]
