"""The ledger: the durable record, one async engine, write transactions and the queries of every area."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from mash_broker.storage.alerts import AlertReads
from mash_broker.storage.audit import AuditReads
from mash_broker.storage.clocks import ClockReads
from mash_broker.storage.corrections import CorrectionReads
from mash_broker.storage.directory import DirectoryReads
from mash_broker.storage.engine import open_engine
from mash_broker.storage.metrics import MetricsReads
from mash_broker.storage.outbox import OutboxReads
from mash_broker.storage.projections import ProjectionReads
from mash_broker.storage.reads import DeliveryReads, MessageReads
from mash_broker.storage.tx import Tx
from mash_broker.storage.web import WebReads

if TYPE_CHECKING:
    from mash_broker.core.ports import (
        AuditLedger,
        EventSource,
        GateLedger,
        GateReceipts,
        GateTransaction,
        HealthLedger,
        HealthTransaction,
        InboxLedger,
        LedgerPort,
        NotificationVersions,
        OutboxLedger,
        PolicyLedger,
        RecordedDecisions,
        ReplayLedger,
        WithdrawalNoticeLedger,
    )


WRITERS_WAIT_S = 10.0  # as long as SQLite's busy timeout (storage.engine)


class Ledger(
    MessageReads,
    DeliveryReads,
    DirectoryReads,
    OutboxReads,
    AuditReads,
    WebReads,
    ClockReads,
    AlertReads,
    ProjectionReads,
    MetricsReads,
    CorrectionReads,
):
    """The durable record. SQLite file by default, PostgreSQL when configured."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pokes: list[Callable[[], None]] = []
        self._writers_lock: asyncio.Lock | None = None
        self._writers_loop: asyncio.AbstractEventLoop | None = None

    def on_append(self, poke: Callable[[], None]) -> None:
        """Call ``poke`` after each write transaction of this handle that appended to the audited log
        commits: a wake-up only (a projector follows the log itself, whichever process wrote it)."""
        self._pokes.append(poke)

    @classmethod
    async def open(cls, url: str, *, create: bool = True, **engine_kw: Any) -> Ledger:
        return cls(await open_engine(url, create=create, **engine_kw))

    async def close(self) -> None:
        await self.engine.dispose()

    def _writers(self) -> asyncio.Lock | None:
        """On SQLite, this process's writers take turns in order (FIFO) before BEGIN IMMEDIATE: SQLite's busy
        handler is not fair, and a subscriber committing batch after batch would starve the relay."""
        if self.engine.dialect.name != "sqlite":
            return None
        loop = asyncio.get_running_loop()
        if self._writers_loop is not loop:
            self._writers_lock, self._writers_loop = asyncio.Lock(), loop
        return self._writers_lock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction. On SQLite it takes the write lock at BEGIN (see storage.engine)."""
        lock, held = self._writers(), False
        if lock is not None:
            with contextlib.suppress(TimeoutError):  # then SQLite's own busy timeout decides, as before
                await asyncio.wait_for(lock.acquire(), WRITERS_WAIT_S)
                held = True
        try:
            async with self.engine.connect() as conn:
                conn.sync_connection.info["write"] = True  # type: ignore[union-attr]
                try:
                    async with conn.begin():
                        tx = Tx(conn)
                        yield tx
                        await tx.flush()  # the rows it buffered (``Tx._insert``), before the commit
                finally:
                    conn.sync_connection.info.pop("write", None)  # type: ignore[union-attr]
        finally:
            if held and lock is not None:
                lock.release()
        if tx.appended:  # committed (an error would have left above)
            for poke in self._pokes:
                poke()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Tx]:
        """Read-only access through the Tx queries (no write lock); nothing written here is kept."""
        async with self.engine.connect() as conn:
            yield Tx(conn)
            await conn.rollback()

    def _write(self) -> AbstractAsyncContextManager[Tx]:
        return self.transaction()


if TYPE_CHECKING:  # the ledger implements the core's ports: mypy checks it here

    def _implements(ledger: Ledger) -> tuple[LedgerPort, AuditLedger, InboxLedger, EventSource]:
        return ledger, ledger, ledger, ledger

    def _implements_corrections(ledger: Ledger) -> tuple[NotificationVersions, WithdrawalNoticeLedger]:
        return ledger, ledger

    def _implements_areas(
        ledger: Ledger,
    ) -> tuple[GateLedger, PolicyLedger, OutboxLedger, RecordedDecisions, ReplayLedger, GateReceipts, HealthLedger]:
        return ledger, ledger, ledger, ledger, ledger, ledger, ledger

    def _tx_implements(tx: Tx) -> tuple[GateTransaction, HealthTransaction]:
        return tx, tx
