"""`mash audit prove` and `mash audit export`: entries with inclusion proofs against one signed checkpoint."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mash_broker.contracts import NotFound
from mash_broker.core.audit.checkpoints import Checkpointer
from mash_broker.core.audit.log import Checkpoint, Entry, LogDiverged
from mash_broker.core.audit.merkle import MerkleTree, leaf_hash
from mash_broker.core.audit.proof_file import ProofFile, ProvenEntry, SignedHead

RECEIVED = "message.received"


async def prove(
    checkpointer: Checkpointer, public_keys: Mapping[str, str], message_id: str, *, every: bool = False
) -> ProofFile:
    """Prove a message's ``message.received`` entry (or, with ``every`` or when it has none, all of its
    entries). ``message_id`` may be a unique prefix of at least 8 characters."""
    wanted = message_id.strip().lower()
    if len(wanted) < 8:
        raise NotFound(f"give at least 8 characters of the message id, not {message_id!r}", field="message_id")
    entries = [e async for page in checkpointer.ledger.log_entries(message_id=wanted) for e in page]
    ids = {e.message_id for e in entries}
    if len(ids) != 1:
        found = "no" if not ids else f"{len(ids)} messages'"
        raise NotFound(f"{found} entries in the audited log match message id {message_id}", record=message_id)
    received = [e for e in entries if e.event_type == RECEIVED]
    chosen = entries if every or not received else received
    return await _proof(
        checkpointer,
        public_keys,
        chosen,
        {"message_id": ids.pop(), "entries": ("all of its entries" if chosen is entries else RECEIVED)},
    )


async def export(
    checkpointer: Checkpointer, public_keys: Mapping[str, str], start: datetime, end: datetime, org: str | None = None
) -> ProofFile:
    """Entries from ``start`` (inclusive) to ``end`` (exclusive), optionally only those about messages
    ``org`` sent or was delivered; every one with its inclusion proof against one checkpoint."""
    pages = checkpointer.ledger.log_entries(start=start, end=end, org=org)
    entries = [e async for page in pages for e in page]
    subject = {"from": start.isoformat(), "to": end.isoformat(), "org": org}
    return await _proof(checkpointer, public_keys, entries, subject)


async def _proof(
    checkpointer: Checkpointer, public_keys: Mapping[str, str], entries: list[Entry], subject: dict[str, Any]
) -> ProofFile:
    head, tree = await _signed_head(checkpointer, max((e.seq for e in entries), default=0))
    proven = []
    for entry in entries:
        data = entry.canonical()
        leaf = leaf_hash(data)
        if leaf != tree.leaf(entry.seq - 1):
            raise LogDiverged(
                f"{entry.describe()} no longer matches its leaf hash; run `mash audit verify`",
                record=f"entry seq {entry.seq}",
            )
        proven.append(
            ProvenEntry(
                seq=entry.seq,
                index=entry.seq - 1,
                leaf_hash=leaf.hex(),
                entry=base64.b64encode(data).decode(),
                audit_path=[h.hex() for h in tree.inclusion_proof(entry.seq - 1, head.tree_size)],
            )
        )
    return ProofFile(
        subject=subject,
        public_key=public_keys.get(head.key_id),
        checkpoint=SignedHead(**head.as_json()),
        entries=proven,
    )


async def _signed_head(checkpointer: Checkpointer, covering: int) -> tuple[Checkpoint, MerkleTree]:
    """The newest checkpoint, signing a new one first if it does not cover entry seq ``covering``."""
    head = await checkpointer.ledger.latest_checkpoint()
    if head is None or head.tree_size < covering:
        await checkpointer.checkpoint()
        head = await checkpointer.ledger.latest_checkpoint()
    if head is None:
        raise NotFound("the audited log is empty: there is nothing to prove")
    tree = await checkpointer.tree()
    if head.tree_size > tree.size or tree.root(head.tree_size).hex() != head.root_hash:
        raise LogDiverged(
            f"the log no longer matches {head.describe()}; run `mash audit verify`", record=head.describe()
        )
    return head, tree
