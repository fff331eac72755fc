"""Signed checkpoints (tree heads): written by the running stack at an interval and on shutdown."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import datetime

from mash_broker.core.audit.entries import checkpoint_statement, iso_utc
from mash_broker.core.audit.keys import KeyStore, Signer
from mash_broker.core.audit.log import Checkpoint, LogDiverged
from mash_broker.core.audit.merkle import MerkleTree
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.ports import AuditLedger, AuditLog, AuditTransaction
from mash_broker.core.settings import Settings
from mash_broker.core.tasks import cancel

log = get_logger("mash.audit")


class Checkpointer:
    """Signs the tree head whenever the log has grown. Keeps the tree in memory and reads only new
    leaves; signs the leaf hashes recorded when each event was written, never recomputed ones."""

    def __init__(
        self, ledger: AuditLedger, signer: Signer, clock: Callable[[], datetime], interval_s: float = 60.0
    ) -> None:
        self.ledger = ledger
        self.signer = signer
        self.clock = clock
        self.interval_s = interval_s
        self._tree = MerkleTree()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def checkpoint(self) -> Checkpoint | None:
        """Write a checkpoint if the log grew since the last one; None if it did not."""
        async with self._lock:
            await self._catch_up(self.ledger)  # the bulk of the reading, outside the log lock
            async with self.ledger.transaction() as tx:
                await tx.lock_event_log()  # no append, and no other checkpoint, until this one commits
                await self._catch_up(tx)
                last = await tx.latest_checkpoint()
                size = self._tree.size
                if last is not None and (
                    last.tree_size > size or self._tree.root(last.tree_size).hex() != last.root_hash
                ):
                    raise LogDiverged(
                        f"the log no longer matches {last.describe()}; not signing", record=last.describe()
                    )
                if size == 0 or (last is not None and last.tree_size == size):
                    return None
                at, root, key_id = self.clock(), self._tree.root().hex(), self.signer.key_id
                statement = checkpoint_statement(tree_size=size, root_hash=root, at=iso_utc(at), key_id=key_id)
                signature = base64.b64encode(self.signer.sign(statement)).decode()
                cid = await tx.add_checkpoint(tree_size=size, root_hash=root, at=at, key_id=key_id, signature=signature)
        log.info("checkpoint.signed", checkpoint_id=cid, tree_size=size, root_hash=root, key_id=key_id)
        return Checkpoint(checkpoint_id=cid, tree_size=size, root_hash=root, at=at, key_id=key_id, signature=signature)

    async def tree(self) -> MerkleTree:
        """The tree over every entry written so far (leaf hashes as recorded)."""
        async with self._lock:
            await self._catch_up(self.ledger)
        return self._tree

    async def _catch_up(self, log: AuditLog | AuditTransaction) -> None:
        for seq, leaf in await log.leaf_hashes_after(self._tree.size):
            if seq != self._tree.size + 1:
                raise LogDiverged(
                    f"entry seq {self._tree.size + 1} is missing (the next is seq {seq}); not signing",
                    record=f"entry seq {self._tree.size + 1}",
                )
            self._tree.append(bytes.fromhex(leaf))

    def start(self) -> None:
        self._task = asyncio.create_task(self._every_interval(), name="audit-checkpointer")

    async def stop(self) -> None:
        """Stop the interval and write a last checkpoint, so a clean shutdown leaves the whole log signed."""
        await cancel(self._task)
        self._task = None
        await self._checkpoint_logged("shutdown")

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._checkpoint_logged("interval")

    async def _checkpoint_logged(self, when: str) -> None:
        try:
            await self.checkpoint()
        except LogDiverged as exc:
            log.error("checkpoint.refused", when=when, code=exc.code, reason=str(exc))
        except Exception:
            log.exception("checkpoint.failed", when=when)


def gate_signer(settings: Settings) -> Signer:
    """The gate's checkpoint signer: the ``mash:gate`` key in ``$MASH_DATA_DIR/keys``, made on first use."""
    return KeyStore(settings.keys_dir).signer(GATE_ORG)


def start_checkpointer(settings: Settings, ledger: AuditLedger, clock: Callable[[], datetime]) -> Checkpointer:
    checkpointer = Checkpointer(ledger, gate_signer(settings), clock, settings.checkpoint_interval_s)
    checkpointer.start()
    return checkpointer
