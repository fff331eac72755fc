"""`mash audit verify`: recompute every leaf and every signed root, and name the first place that differs.

Checks, in order: each entry's content against the leaf hash recorded when it was written; that seq
runs 1, 2, 3… with nothing missing; each checkpoint's signature; each checkpoint's root against the
tree recomputed from the entries' content; consistency between successive checkpoints; then every
stored copy of a message against the hash its entry recorded (``stored``). Checkpoints are read
before entries, so a log growing while it is verified is not a false alarm.

A page of entries is checked from its raw columns at hashing speed (``leaves``); a page with anything
those do not prove (an entry out of place, one the raw columns do not hash to) is read again as entries
and checked one by one against RFC 8785 (``LogVerifier.add``), which names what differs. The tree is kept
as its frontier (``heads``): memory does not grow with the log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mash_broker.core.audit.copies import StoredCopies, records_copies
from mash_broker.core.audit.findings import Problem, Report
from mash_broker.core.audit.heads import TreeHeads
from mash_broker.core.audit.keys import verify_signature
from mash_broker.core.audit.leaves import LeafHasher, RawEntries, RawRow
from mash_broker.core.audit.log import PAGE, Checkpoint, Entry, checkpoints
from mash_broker.core.audit.merkle import leaf_hash, verify_consistency
from mash_broker.core.audit.stored import CopyChecker
from mash_broker.core.ports import AuditLog

__all__ = ["LogVerifier", "Problem", "Report", "VerifiableLedger", "verify_log"]


class LogVerifier:
    """Feed it every entry in seq order, then ``finish``. Pure: no I/O."""

    def __init__(self, signed: list[Checkpoint], keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.signed = signed
        self.keys = keys
        pairs = [(a.tree_size, b.tree_size) for a, b in itertools.pairwise(signed)]
        self.tree = TreeHeads([cp.tree_size for cp in signed], [(m, n) for m, n in pairs if m < n])
        self.report = Report(checkpoints=len(signed))
        self._hasher = LeafHasher()

    def add_rows(self, rows: Sequence[RawRow]) -> list[Entry] | None:
        """Check a page of raw rows at hashing speed; the entries among them that record a stored copy's
        hash, or None (nothing added) if the rows do not prove themselves: then ``add`` each entry."""
        if not rows or rows[0][0] != self.tree.size + 1 or rows[-1][0] != self.tree.size + len(rows):
            return None
        leaves = self._hasher.leaves(rows)
        if leaves is None:
            return None
        self.tree.extend(leaves)
        return [
            Entry(seq, datetime.fromisoformat(at), kind, mid, json.loads(detail), leaf)
            for seq, at, kind, mid, detail, leaf in rows
            if records_copies(kind, detail) and at is not None
        ]

    def add(self, entry: Entry) -> None:
        expected = self.tree.size + 1
        if entry.seq > expected:
            missing = f"seq {expected}" if entry.seq == expected + 1 else f"seq {expected}..{entry.seq - 1}"
            self.report.add(
                Problem(
                    "entry_missing", f"entry {missing}", f"missing from the log (the next entry is {entry.describe()})"
                ),
                first_only=True,
            )
        elif entry.seq < expected:
            self.report.add(
                Problem("entry_out_of_place", entry.describe(), f"expected seq {expected} here"), first_only=True
            )
        try:
            leaf = leaf_hash(entry.canonical())
        except ValueError as exc:  # rfc8785 refuses the stored detail (a number out of range, NaN)
            leaf = bytes(32)
            self.report.add(
                Problem("entry_altered", entry.describe(), f"content is not canonical JSON: {exc}"), first_only=True
            )
        else:
            if leaf.hex() != entry.leaf_hash:
                self.report.add(
                    Problem(
                        "entry_altered",
                        entry.describe(),
                        "content does not match the leaf hash recorded when it was written",
                    ),
                    first_only=True,
                )
        self.tree.extend([leaf])

    def finish(self) -> Report:
        self.report.entries = self.tree.size
        intact: list[int] = [0]  # tree sizes whose signed root the entries still hash to
        matched: set[int] = set()  # checkpoint ids whose root the entries still hash to
        previous: Checkpoint | None = None
        for cp in self.signed:
            self._check_signature(cp)
            if cp.tree_size > self.tree.size:
                self.report.add(
                    Problem(
                        "checkpoint_beyond_log",
                        cp.describe(),
                        f"covers {cp.tree_size} entries but the log has {self.tree.size}",
                    )
                )
            elif self.tree.roots[cp.tree_size].hex() == cp.root_hash:
                intact.append(cp.tree_size)
                matched.add(cp.checkpoint_id)
                if previous is not None and previous.checkpoint_id in matched:
                    self._check_consistency(previous, cp)
            else:
                since = max(s for s in intact if s <= cp.tree_size)
                self.report.add(
                    Problem(
                        "checkpoint_root_mismatch",
                        cp.describe(),
                        (
                            f"the log's first {cp.tree_size} entries do not hash to its signed root: "
                            f"an entry among seq {since + 1}..{cp.tree_size} was changed, removed, added or reordered "
                            "since it was signed"
                        ),
                    )
                )
            if previous is not None and cp.tree_size < previous.tree_size:
                self.report.add(
                    Problem(
                        "checkpoint_shrank",
                        f"checkpoints {previous.checkpoint_id} and {cp.checkpoint_id}",
                        f"the tree shrank from {previous.tree_size} to {cp.tree_size} entries",
                    )
                )
            previous = cp
        self.report.covered = max((cp.tree_size for cp in self.signed), default=0)
        return self.report

    def _check_signature(self, cp: Checkpoint) -> None:
        key = self.keys.get(cp.key_id)
        if key is None:
            self.report.add(
                Problem(
                    "checkpoint_unknown_key", cp.describe(), f"signed with key {cp.key_id}, which is not the gate's"
                )
            )
            return
        try:
            signature = base64.b64decode(cp.signature, validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        if not verify_signature(key, cp.statement(), signature):
            self.report.add(
                Problem(
                    "checkpoint_bad_signature", cp.describe(), f"the signature does not verify with key {cp.key_id}"
                )
            )

    def _check_consistency(self, before: Checkpoint, after: Checkpoint) -> None:
        """Both roots match the log: check, as a third party holding only the two heads would, that the
        later tree extends the earlier one (an RFC 9162 consistency proof from the recomputed tree)."""
        m, n = before.tree_size, after.tree_size
        if m > n:
            return  # reported as checkpoint_shrank
        root_m, root_n = bytes.fromhex(before.root_hash), bytes.fromhex(after.root_hash)
        proof = self.tree.proofs[m, n] if m < n else []
        if not verify_consistency(m, n, root_m, root_n, proof):
            self.report.add(
                Problem(
                    "checkpoints_inconsistent",
                    f"checkpoints {before.checkpoint_id} and {after.checkpoint_id}",
                    f"the tree signed at size {m} is not a prefix of the tree signed at size {n}",
                )
            )


class VerifiableLedger(AuditLog, RawEntries, StoredCopies, Protocol):
    """What `mash audit verify` reads: the audited log and the stored copies it recorded hashes of."""

    async def entries_between(self, first_seq: int, last_seq: int) -> list[Entry]:
        """The entries with seq in ``first_seq..last_seq``, in seq order."""
        ...


async def verify_log(ledger: VerifiableLedger, keys: Mapping[str, Ed25519PublicKey]) -> Report:
    """Verify the whole audited log against the gate's public key(s), by key id, and every stored copy of a
    message against the hash its entry recorded (``mash_broker.core.audit.copies``), a page at a time."""
    verifier = LogVerifier(await checkpoints(ledger), keys)
    stored = CopyChecker(ledger, verifier.report)
    pages = aiter(ledger.raw_entry_pages(page=PAGE))
    following = asyncio.ensure_future(anext(pages, None))  # the next page is read while this one is hashed
    while (rows := await following) is not None:
        following = asyncio.ensure_future(anext(pages, None))
        recording = verifier.add_rows(rows)
        if recording is None:  # something on this page is not as written: check it entry by entry
            recording = await ledger.entries_between(rows[0][0], rows[-1][0])
            for entry in recording:
                verifier.add(entry)
        await stored.add(recording)
    verifier.finish()
    return await stored.finish()  # the same report, with the stored copies' findings added
