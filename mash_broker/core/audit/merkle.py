"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs. Pure: no I/O.

Leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left || right)``; a tree of n
leaves splits at the largest power of two below n. The tree is built over *leaf hashes* (the log
stores each entry's leaf hash), indices count from 0, and the empty tree's root is SHA-256 of nothing.

``MerkleTree`` keeps the hash of every complete (perfect, aligned) subtree, about 2n hashes in flat
byte arrays, so appending is amortised O(1) and a root of any earlier size or any proof costs
O(log² n). Proof verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 6962 tree over leaf hashes."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf: bytes) -> None:
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
        index, level, digest = self.size, 0, leaf
        self._levels[0] += digest
        while index & 1:  # a right child completes its parent: store the parent one level up
            digest = node_hash(self._node(level, index - 1), digest)
            index, level = index >> 1, level + 1
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += digest

    def leaf(self, index: int) -> bytes:
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        return self._mth(0, self._size(size))

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH of leaves ``start..end - 1``."""
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"leaves {start}..{end - 1} are outside a tree of size {self.size}")
        return self._mth(start, end)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 PATH(index, D[0:size]): the audit path, from the leaf's sibling up."""
        n = self._size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} is outside a tree of size {n}")
        path: list[bytes] = []
        start, end = 0, n
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._mth(start + k, end))
                end = start + k
            else:
                path.append(self._mth(start, start + k))
                start += k
        return path[::-1]

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        """RFC 6962 PROOF(m, D[0:n]): shows the tree of size m is a prefix of the tree of size n."""
        return consistency_path(m, self._size(n), self._mth)

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def _node(self, level: int, index: int) -> bytes:
        at = index * HASH_SIZE
        return bytes(self._levels[level][at : at + HASH_SIZE])

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:  # a complete subtree: stored
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))


def consistency_path(m: int, n: int, mth: Callable[[int, int], bytes]) -> list[bytes]:
    """RFC 6962 PROOF(m, D[0:n]) from ``mth(start, end)``, the hash of leaves ``start..end - 1``. The ranges it
    asks for lie inside ``[0, m)`` (each one of the tree of size m's complete subtrees) or inside ``[m, n)``."""
    if not 0 <= m <= n:
        raise ValueError(f"no consistency proof from size {m} to size {n}")
    if m in (0, n):
        return []
    proof: list[bytes] = []
    start, end, whole = 0, n, True
    while m != end:  # SUBPROOF(m - start, D[start:end], whole), unrolled
        k = _split(end - start)
        if m - start <= k:
            proof.append(mth(start + k, end))
            end = start + k
        else:
            proof.append(mth(start, start + k))
            start, whole = start + k, False
    head = [] if whole else [mth(start, end)]
    return head + proof[::-1]


def root(leaves: Sequence[bytes]) -> bytes:
    return MerkleTree(leaves).root()


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    return MerkleTree(leaves).inclusion_proof(index)


def consistency_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return MerkleTree(leaves).consistency_proof(m)


def _well_formed(*hashes: bytes) -> bool:
    return all(len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show ``leaf`` at ``index`` in the tree of ``size`` with ``root_hash``?"""
    if not 0 <= index < size or not _well_formed(leaf, root_hash, *proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root_hash


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does ``proof`` show the tree of size m (``root_m``) is a prefix of size n's?"""
    if not 0 <= m <= n or not _well_formed(root_m, root_n, *proof):
        return False
    if m == n:
        return not proof and root_m == root_n
    if m == 0:
        return not proof  # every tree extends the empty one
    if not proof:
        return False
    path = [root_m, *proof] if m & (m - 1) == 0 else list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root_m and sr == root_n
