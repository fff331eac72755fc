"""The tree heads `mash audit verify` checks, computed as the leaves stream past, in bounded memory. Pure.

``TreeHeads`` keeps only the RFC 6962 *frontier* (the hashes of the complete subtrees the leaves so far
make, one per bit of the size: O(log n)), so a log of any length is verified in the same memory. At each
size a signed checkpoint names it records the root; for each pair of successive checkpoints (m < n) it
also builds, as a third party holding only the two heads would check it, the consistency proof: its
hashes inside ``[0, m)`` are the frontier at m, those inside ``[m, n)`` come from the leaves between the
two, kept only while such a pair is open (so memory is bounded by the largest gap between checkpoints).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mash_broker.core.audit.merkle import EMPTY_ROOT, consistency_path

_sha256 = hashlib.sha256


def _fold(frontier: Sequence[bytes]) -> bytes:
    """The root of a tree from its frontier (largest complete subtree first)."""
    if not frontier:
        return EMPTY_ROOT
    digest = frontier[-1]
    for left in reversed(frontier[:-1]):
        digest = _sha256(b"\x01" + left + digest).digest()
    return digest


def subtree_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH of a run of leaf hashes, a level at a time (an odd last node moves up a level)."""
    level, sha256 = list(leaves), _sha256
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _ranges(size: int) -> list[tuple[int, int]]:
    """The leaf ranges of the frontier of a tree of ``size`` leaves, largest first."""
    out, start = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            out.append((start, start + (1 << bit)))
            start += 1 << bit
    return out


class TreeHeads:
    """Feed it every leaf hash in order (``extend``); ask the roots and proofs at the sizes it was given."""

    def __init__(self, sizes: Sequence[int], pairs: Sequence[tuple[int, int]]) -> None:
        self.size = 0
        self._frontier: list[bytes] = []
        self._stops = sorted(set(sizes) | {m for m, _ in pairs} | {n for _, n in pairs})
        self._next = 0  # index into _stops of the next size to stop at
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}
        self._pairs = sorted(set(pairs), key=lambda p: p[1])
        self._frontiers: dict[int, dict[tuple[int, int], bytes]] = {}  # at each m of an open pair
        self._kept: list[bytes] = []  # leaves from _kept_from on, while a pair needs them
        self._kept_from = 0
        self.proofs: dict[tuple[int, int], list[bytes]] = {}
        self._update_kept()

    def extend(self, leaves: Sequence[bytes]) -> None:
        i, n = 0, len(leaves)
        while i < n:
            stop = self._stops[self._next] if self._next < len(self._stops) else None
            j = n if stop is None else min(n, i + stop - self.size)
            self._append(leaves[i:j] if (i, j) != (0, n) else leaves)
            i = j
            if self.size == stop:
                self._reached(stop)

    def root(self) -> bytes:
        return _fold(self._frontier)

    def _append(self, leaves: Sequence[bytes]) -> None:
        if self._keeping:
            self._kept.extend(leaves)
        frontier, size, sha256 = self._frontier, self.size, _sha256
        for digest in leaves:
            s = size
            while s & 1:  # a right child completes its parent
                digest = sha256(b"\x01" + frontier.pop() + digest).digest()
                s >>= 1
            frontier.append(digest)
            size += 1
        self.size = size

    def _reached(self, size: int) -> None:
        while self._next < len(self._stops) and self._stops[self._next] <= size:
            self._next += 1
        self.roots[size] = self.root()
        if any(m == size for m, _ in self._pairs):
            self._frontiers[size] = dict(zip(_ranges(size), self._frontier, strict=True))
        for m, n in self._pairs:
            if n == size and m < n:
                self.proofs[m, n] = self._proof(m, n)
        self._update_kept()

    def _proof(self, m: int, n: int) -> list[bytes]:
        old, kept, base = self._frontiers[m], self._kept, self._kept_from

        def mth(start: int, end: int) -> bytes:
            if end <= m:
                return old[start, end]
            return subtree_root(kept[start - base : end - base])

        return consistency_path(m, n, mth)

    def _update_kept(self) -> None:
        """Keep the leaves from the smallest m of a pair open at this size (m <= size < n), none if none is."""
        open_from = [m for m, n in self._pairs if m <= self.size < n]
        self._keeping = bool(open_from)
        if not open_from:
            self._kept, self._kept_from = [], self.size
        else:
            start = min(open_from)
            del self._kept[: max(0, start - self._kept_from)]
            self._kept_from = start
        for m in [m for m in self._frontiers if all(pm != m or pn <= self.size for pm, pn in self._pairs)]:
            del self._frontiers[m]
