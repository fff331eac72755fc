"""The audited log as the ledger gives it back: entries in tree order and signed checkpoints.

The queries live in ``mash_broker.storage.audit``; this module holds the records they return and
reads them through the ``AuditLog`` port (``mash_broker.core.ports``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mash_broker.contracts import LedgerError
from mash_broker.core.audit.entries import LOG_ID, checkpoint_statement, entry_bytes, iso_utc

if TYPE_CHECKING:
    from mash_broker.core.ports import AuditLog

PAGE = 5000


class LogDiverged(LedgerError):
    """The ledger's events no longer match what was recorded or signed: run `mash audit verify`."""

    code = "audit_log_diverged"


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


def entry_pages(log: AuditLog, *, page: int = PAGE) -> AsyncIterator[list[Entry]]:
    """Every entry in seq order, a page at a time."""
    return log.log_entries(page=page)


async def checkpoints(log: AuditLog) -> list[Checkpoint]:
    """Every checkpoint, oldest first."""
    return await log.checkpoints()
