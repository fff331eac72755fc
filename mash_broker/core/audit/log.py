"""Reading the audited log from the ledger: entries in tree order, leaf hashes, checkpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from mash_broker.contracts import LedgerError
from mash_broker.core.audit.entries import LOG_ID, checkpoint_statement, entry_bytes, iso_utc
from mash_broker.storage import Ledger
from mash_broker.storage import schema as t

PAGE = 5000


class LogDiverged(LedgerError):
    """The ledger's events no longer match what was recorded or signed: run `mash audit verify`."""

    code = "audit_log_diverged"


@dataclass(frozen=True)
class Entry:
    """One event as stored: its content, its position (seq) and the leaf hash recorded when written."""

    seq: int
    at: datetime
    event_type: str
    message_id: str | None
    detail: Any
    leaf_hash: str

    def canonical(self) -> bytes:
        return entry_bytes(self.at, self.event_type, self.message_id, self.detail)

    def describe(self) -> str:
        mid = f", message {self.message_id}" if self.message_id else ""
        return f"entry seq {self.seq} ({self.event_type}{mid}, at {iso_utc(self.at)})"


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the log's first ``tree_size`` entries hash to ``root_hash``."""

    checkpoint_id: int
    tree_size: int
    root_hash: str
    at: datetime
    key_id: str
    signature: str  # base64

    def statement(self) -> bytes:
        return checkpoint_statement(
            tree_size=self.tree_size, root_hash=self.root_hash, at=iso_utc(self.at), key_id=self.key_id
        )

    def describe(self) -> str:
        return f"checkpoint {self.checkpoint_id} (tree size {self.tree_size}, signed {iso_utc(self.at)})"

    def as_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "at": iso_utc(self.at),
            "key_id": self.key_id,
            "log": LOG_ID,
            "signature": self.signature,
        }


_ENTRY = (
    t.events.c.seq,
    t.events.c.at,
    t.events.c.event_type,
    t.events.c.message_id,
    t.events.c.detail,
    t.events.c.leaf_hash,
)


async def entry_pages(ledger: Ledger, *, where: Any = None, page: int = PAGE) -> AsyncIterator[list[Entry]]:
    """Every entry (or those matching ``where``) in seq order, a page at a time."""
    after: int | None = None
    while True:
        q = select(*_ENTRY).order_by(t.events.c.seq).limit(page)
        if after is not None:
            q = q.where(t.events.c.seq > after)
        if where is not None:
            q = q.where(where)
        async with ledger.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        if not rows:
            return
        yield [Entry(*r) for r in rows]
        after = rows[-1][0]


async def leaf_rows(conn: AsyncConnection, after_seq: int) -> list[tuple[int, str]]:
    """(seq, stored leaf hash) of every entry after ``after_seq``, in seq order."""
    q = select(t.events.c.seq, t.events.c.leaf_hash).where(t.events.c.seq > after_seq).order_by(t.events.c.seq)
    return [(int(seq), str(leaf)) for seq, leaf in (await conn.execute(q)).all()]


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        checkpoint_id=row.checkpoint_id,
        tree_size=row.tree_size,
        root_hash=row.root_hash,
        at=row.at,
        key_id=row.key_id,
        signature=row.signature,
    )


async def checkpoints(ledger: Ledger) -> list[Checkpoint]:
    """Every checkpoint, oldest first."""
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(select(t.checkpoints).order_by(t.checkpoints.c.checkpoint_id))).all()
    return [_checkpoint(r) for r in rows]


async def latest_checkpoint(conn: AsyncConnection) -> Checkpoint | None:
    q = select(t.checkpoints).order_by(t.checkpoints.c.checkpoint_id.desc()).limit(1)
    row = (await conn.execute(q)).first()
    return _checkpoint(row) if row is not None else None
