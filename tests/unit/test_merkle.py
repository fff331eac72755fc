"""The Merkle log's hashing and proofs against a naive RFC 6962 reference and published test vectors."""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mash_broker.core.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


# -- the reference: RFC 6962 section 2.1, written as the RFC writes it (recursion over lists) -----------
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(data: list[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _k(len(data))
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return [*ref_path(m, data[:k]), ref_mth(data[k:])]
    return [*ref_path(m - k, data[k:]), ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    if m == len(data):
        return [] if whole else [ref_mth(data)]
    k = _k(len(data))
    if m <= k:
        return [*ref_subproof(m, data[:k], whole), ref_mth(data[k:])]
    return [*ref_subproof(m - k, data[k:], False), ref_mth(data[:k])]


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() * (i % 3 + 1) for i in range(n)]


@cache
def tree_of(n: int) -> MerkleTree:
    return MerkleTree(leaf_hash(d) for d in entries(n))


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


# -- published vectors: RFC 6962 reference test data as used by transparency-dev/merkle --------------
# Source: github.com/transparency-dev/merkle, proof/verify_test.go (`leaves`, `roots`, `inclusionProofs`,
# `consistencyProofs`), the Certificate Transparency reference vectors for an 8-leaf tree.
GO_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
GO_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
GO_INCLUSION = [  # (leaf, 1-based as in the Go data; tree size; path)
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
GO_CONSISTENCY = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def test_the_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT == MerkleTree().root()


def test_published_roots_for_every_prefix_of_the_8_leaf_tree() -> None:
    tree = MerkleTree(leaf_hash(d) for d in GO_LEAVES)
    assert [tree.root(n) for n in range(1, 9)] == GO_ROOTS


@pytest.mark.parametrize(("leaf", "size", "path"), GO_INCLUSION)
def test_published_inclusion_proofs(leaf: int, size: int, path: list[str]) -> None:
    leaves = [leaf_hash(d) for d in GO_LEAVES[:size]]
    proof = [bytes.fromhex(h) for h in path]
    assert inclusion_proof(leaf - 1, leaves) == proof
    assert verify_inclusion(leaves[leaf - 1], leaf - 1, size, proof, GO_ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "path"), GO_CONSISTENCY)
def test_published_consistency_proofs(m: int, n: int, path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    assert consistency_proof(m, [leaf_hash(d) for d in GO_LEAVES[:n]]) == proof
    assert verify_consistency(m, n, GO_ROOTS[m - 1], GO_ROOTS[n - 1], proof)


# -- every tree size up to 64 against the reference ----------------------------------------------------
@pytest.mark.parametrize("n", range(1, 65))
def test_every_inclusion_proof_matches_the_reference_and_verifies(n: int) -> None:
    data, tree = entries(n), tree_of(n)
    mth = ref_mth(data)
    assert tree.root() == mth
    for i in range(n):
        proof = tree.inclusion_proof(i)
        assert proof == ref_path(i, data)
        leaf = leaf_hash(data[i])
        assert verify_inclusion(leaf, i, n, proof, mth)
        assert not verify_inclusion(flip(leaf), i, n, proof, mth), "wrong leaf"
        assert not verify_inclusion(leaf, i, n, proof, flip(mth)), "wrong root"
        assert not verify_inclusion(leaf, n, n, proof, mth), "index past the end"
        for j in range(n):
            if j != i:
                assert not verify_inclusion(leaf, j, n, proof, mth), f"wrong index {j}"
        for k in range(len(proof)):
            assert not verify_inclusion(leaf, i, n, [*proof[:k], flip(proof[k]), *proof[k + 1 :]], mth)
        if proof:
            assert not verify_inclusion(leaf, i, n, proof[:-1], mth), "truncated"
        assert not verify_inclusion(leaf, i, n, [*proof, mth], mth), "trailing garbage"


@pytest.mark.parametrize("n", range(1, 65))
def test_every_consistency_proof_matches_the_reference_and_verifies(n: int) -> None:
    data, tree = entries(n), tree_of(n)
    root_n = ref_mth(data)
    for m in range(0, n + 1):
        root_m = ref_mth(data[:m])
        proof = tree.consistency_proof(m)
        if 0 < m < n:
            assert proof == ref_subproof(m, data, True)
        else:
            assert proof == []
        assert verify_consistency(m, n, root_m, root_n, proof)
        if 0 < m < n:
            assert not verify_consistency(m, n, flip(root_m), root_n, proof), "wrong old root"
            assert not verify_consistency(m, n, root_m, flip(root_n), proof), "wrong new root"
            assert not verify_consistency(m, n, root_n, root_m, proof), "swapped roots"
            assert not verify_consistency(m, n, root_m, root_n, []), "empty proof"
            assert not verify_consistency(m, n, root_m, root_n, proof[:-1]), "truncated"
            assert not verify_consistency(m, n, root_m, root_n, [*proof, root_m]), "trailing garbage"
            for k in range(len(proof)):
                assert not verify_consistency(m, n, root_m, root_n, [*proof[:k], flip(proof[k]), *proof[k + 1 :]])
            if m + 1 < n:
                assert not verify_consistency(m + 1, n, root_m, root_n, proof), "wrong old size"
    assert not verify_consistency(n, n, root_n, flip(root_n), []), "same size, different roots"
    assert not verify_consistency(n, n - 1, root_n, root_n, []), "the tree shrank"


def test_roots_of_earlier_sizes_are_those_of_the_prefixes() -> None:
    data, tree = entries(64), tree_of(64)
    assert [tree.root(n) for n in range(65)] == [ref_mth(data[:n]) for n in range(65)]
    assert [tree.inclusion_proof(i, 37) for i in range(37)] == [ref_path(i, data[:37]) for i in range(37)]


def test_leaves_must_be_sha256_sized() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree([b"short"])
    with pytest.raises(ValueError, match="outside"):
        tree_of(4).inclusion_proof(4)


# -- random sizes up to 300 -----------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=12), min_size=1, max_size=300), pick=st.integers(min_value=0))
def test_random_trees_prove_inclusion(data: list[bytes], pick: int) -> None:
    n, i = len(data), pick % len(data)
    tree = MerkleTree(leaf_hash(d) for d in data)
    mth = ref_mth(data)
    proof = tree.inclusion_proof(i)
    assert tree.root() == mth
    assert proof == ref_path(i, data)
    assert verify_inclusion(leaf_hash(data[i]), i, n, proof, mth)
    assert not verify_inclusion(leaf_hash(data[i] + b"!"), i, n, proof, mth)
    assert not verify_inclusion(leaf_hash(data[i]), i, n, proof, flip(mth))


@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=12), min_size=2, max_size=300), pick=st.integers(min_value=0))
def test_random_trees_prove_consistency(data: list[bytes], pick: int) -> None:
    n = len(data)
    m = 1 + pick % (n - 1)
    tree = MerkleTree(leaf_hash(d) for d in data)
    proof = tree.consistency_proof(m)
    assert proof == ref_subproof(m, data, True)
    assert verify_consistency(m, n, ref_mth(data[:m]), ref_mth(data), proof)
    altered = [*data[: m - 1], data[m - 1] + b"!", *data[m:]]
    assert not verify_consistency(m, n, ref_mth(altered[:m]), ref_mth(data), proof)
