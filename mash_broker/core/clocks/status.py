"""Where each clock stands, read from the ledger (for `mash clocks list` and explain)."""

from __future__ import annotations

from mash_broker.core.ports import ClockReads
from mash_broker.core.records import ClockRecord, ClockState

__all__ = ["ClockState", "list_clocks", "state_of"]


def state_of(row: ClockRecord) -> ClockState:
    """A clock's state, most advanced first: stopped beats breached beats warned."""
    return row.state


async def list_clocks(
    ledger: ClockReads, state: ClockState | None = None, *, subject_id: str | None = None
) -> list[ClockRecord]:
    """Clocks, soonest deadline first; only those in ``state`` / for ``subject_id``."""
    return [r for r in await ledger.clocks(subject_id=subject_id) if state is None or r.state is state]
