"""Side effects follow the audited log, not the process that wrote it.

A projection (the clocks, the alert queue) is applied to each entry of the audited log in `seq` order,
whichever process appended it: `mash up`, `mash school ack`, a second stack. The projector keeps each
projection's cursor in the ledger and moves it in the transaction that makes the projection's own
writes, under the projection's guard, so each entry is applied exactly once, also after a crash or a
restart, and also with two stacks following the same ledger. It polls every ``interval_s`` and is
poked when its own process appends, so the latency is a poll interval at worst.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Generic

from mash_broker.core.logging import get_logger
from mash_broker.core.ports import ProjectedLedger, Projection, TxT
from mash_broker.core.tasks import cancel

log = get_logger("mash.projector")

BATCH = 500  # entries applied per transaction


async def follow(tx: TxT, projection: Projection[TxT], *, limit: int = BATCH) -> int:
    """Inside ``tx``: claim the projection, apply up to ``limit`` entries after its cursor (skipping what
    it wrote itself) and move the cursor past them. Returns how many entries it moved past."""
    cursor = await tx.claim_projection(projection.name, new_from_end=not projection.replays_history)
    entries = await tx.events_after(cursor, limit)
    for entry in entries:
        if entry.event_type not in projection.writes:
            await projection.apply(tx, entry)
    if entries:
        await tx.advance_projection(projection.name, entries[-1].seq)
    return len(entries)


class Projector(Generic[TxT]):
    """Follows the audited log for its projections: ``catch_up`` once, or ``start`` to keep following."""

    def __init__(
        self,
        ledger: ProjectedLedger[TxT],
        projections: Sequence[Projection[TxT]],
        *,
        interval_s: float = 0.25,
        batch: int = BATCH,
    ) -> None:
        self.ledger, self.projections = ledger, tuple(projections)
        self.interval_s, self.batch = interval_s, batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """Give each projection its cursor if it has none: from here on nothing it should see is missed."""
        for projection in self.projections:
            if await self.ledger.projection_cursor(projection.name) is None:
                async with self.ledger.transaction() as tx:
                    await tx.claim_projection(projection.name, new_from_end=not projection.replays_history)

    async def catch_up(self) -> int:
        """Apply every entry not yet applied, for every projection; returns how many entries were passed."""
        return sum([await self._catch_up(p) for p in self.projections])

    async def _catch_up(self, projection: Projection[TxT]) -> int:
        passed = 0
        while True:
            cursor = await self.ledger.projection_cursor(projection.name)
            if cursor is not None and cursor >= await self.ledger.last_event_seq():
                return passed  # nothing new: no write transaction, no lock taken
            async with self.ledger.transaction() as tx:
                moved = await follow(tx, projection, limit=self.batch)
            passed += moved
            if moved < self.batch:
                return passed

    def poke(self) -> None:
        """Something was appended: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        """Register the projections, then follow the log until stopped."""
        await self.register()
        self._task = asyncio.create_task(self._follow(), name="projector")
        log.info("projector.started", projections=[p.name for p in self.projections], interval_s=self.interval_s)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the ledger failed, or an entry did: the cursor stays, try again
                log.warning("projection.failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):  # poked, or the poll interval is up
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
