"""The outbox relay: publishes what the ledger has committed, then marks it published.

At-least-once: a crash between publish and mark sends the record again, and every consumer
deduplicates by message id. Correctness never depends on Kafka transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from mash_broker.core.logging import get_logger
from mash_broker.core.ports import OutboxLedger
from mash_broker.core.records import OutboxRow
from mash_broker.core.tasks import cancel

log = get_logger("mash.relay")

Publish = Callable[[OutboxRow], Awaitable[None]]


class Relay:
    """Polls the outbox and publishes in order, batch by batch."""

    def __init__(
        self,
        ledger: OutboxLedger,
        publish: Publish,
        clock: Callable[[], datetime],
        interval_s: float = 0.2,
        batch: int = 500,
    ) -> None:
        self.ledger, self.publish, self.clock = ledger, publish, clock
        self.interval_s, self.batch = interval_s, batch
        self.relay_id = str(uuid.uuid4())  # whose claims on the outbox are whose
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._published: list[int] = []  # the last batch, published, to be marked with the next claim

    async def drain_once(self) -> int:
        """Publish one batch of due records; returns how many were published. Records are claimed
        first, so a consent withdrawal can no longer cancel one that is on its way out. The batch is
        marked published in the transaction of the next claim (one commit per batch): a crash before it
        sends the batch again, which consumers deduplicate by message id."""
        rows = await self.ledger.claim_outbox(self.relay_id, self.clock(), self.batch, published=self._published)
        self._published = []
        if not rows:
            return 0
        await asyncio.gather(*(self.publish(r) for r in rows))
        self._published = [r.seq for r in rows]
        return len(rows)

    async def drain(self) -> int:
        """Publish until nothing is due; the last batch is marked published before this returns."""
        total = 0
        while n := await self.drain_once():
            total += n
        return total

    def poke(self) -> None:
        """Something was committed: publish now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                n = await self.drain()
                if n:
                    log.debug("outbox.published", count=n)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep relaying; the ledger still holds every record
                log.warning("outbox.publish_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        try:
            await self.drain()
        except Exception as exc:  # the ledger keeps it; the next start publishes it
            log.warning("outbox.final_drain_failed", error=type(exc).__name__)
