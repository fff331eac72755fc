"""The audited log's stored columns are its canonical bytes: the fast leaf check agrees with RFC 8785, always.

``joined_entry`` (what ``Tx.event`` hashes) must equal ``entry_bytes`` (RFC 8785 of the whole entry), and
``LeafHasher`` (what ``mash audit verify`` hashes) must never accept a row whose fields are not the entry
as written: it returns the RFC 8785 leaves or None (then verify checks the page entry by entry).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mash_broker.core.audit.entries import as_stored, canonical_detail, entry_bytes, iso_utc, joined_entry
from mash_broker.core.audit.heads import TreeHeads
from mash_broker.core.audit.leaves import LeafHasher
from mash_broker.core.audit.merkle import MerkleTree, leaf_hash

SAFE_INT = 2**53 - 1
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # lone surrogates cannot be stored
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE_INT, SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.sampled_from(["police:alpha", "school:990001", "2026-11-17T09:00:00+00:00", 'a"b\\c\n\u2028\x7f', "é😀"])
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
details = st.dictionaries(texts | st.sampled_from(["outbox_sha256", "delivery_id", "\ue000", "😀"]), values, max_size=6)
event_types = st.sampled_from(["message.received", "delivery.queued", "share.referred"]) | texts
message_ids = st.none() | st.uuids().map(str) | texts
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001 -- hypothesis bounds are naive; the values are UTC


def row(at: datetime, event_type: str, mid: str | None, detail_text: str, leaf: str) -> tuple[Any, ...]:
    return (1, iso_utc(at), event_type, mid, detail_text, leaf)


def rfc_leaf(at: datetime, event_type: str, mid: str | None, detail: dict[str, Any]) -> bytes:
    return leaf_hash(entry_bytes(at, event_type, mid, detail))


@settings(max_examples=400)
@given(moments, event_types, message_ids, details)
def test_the_joined_columns_are_the_rfc8785_entry(
    at: datetime, event_type: str, mid: str | None, detail: dict[str, Any]
) -> None:
    stored = as_stored(detail)
    assert joined_entry(iso_utc(at), event_type, mid, canonical_detail(stored)) == entry_bytes(
        at, event_type, mid, stored
    )


@settings(max_examples=400)
@given(moments, event_types, message_ids, details, st.booleans())
def test_the_fast_leaves_are_the_rfc8785_leaves_or_none(
    at: datetime, event_type: str, mid: str | None, detail: dict[str, Any], old_append: bool
) -> None:
    """New rows (canonical text) and rows of the old append path (``json.dumps`` text) alike."""
    stored = as_stored(detail)
    leaf = rfc_leaf(at, event_type, mid, stored)
    text = json.dumps(stored) if old_append else canonical_detail(stored)
    got = LeafHasher().leaves([row(at, event_type, mid, text, leaf.hex())])
    assert got is None or got == [leaf]
    safe_mid = mid is None or (mid.isprintable() and '"' not in mid and "\\" not in mid)
    if not old_append and safe_mid:
        assert got == [leaf]  # the path every row the ledger writes now takes


@settings(max_examples=400)
@given(moments, event_types, message_ids, details, details, st.booleans())
def test_an_edited_detail_is_never_accepted(
    at: datetime, event_type: str, mid: str | None, written: dict[str, Any], edited: dict[str, Any], canonical: bool
) -> None:
    written, edited = as_stored(written), as_stored(edited)
    assume(rfc8785.dumps(written) != rfc8785.dumps(edited))  # an edit RFC 8785 can tell apart
    leaf = rfc_leaf(at, event_type, mid, written).hex()
    text = canonical_detail(edited) if canonical else json.dumps(edited)
    assert LeafHasher().leaves([row(at, event_type, mid, text, leaf)]) is None


def test_an_edit_that_shifts_text_between_columns_is_not_accepted() -> None:
    """Moving the end of the detail into a message id that carries quotes joins to the same bytes: refused."""
    at = datetime(2026, 11, 17, 7, tzinfo=UTC)
    written = {"a": {"b": 1, "event_type": "y", "message_id": "z"}}
    leaf = rfc_leaf(at, "x", "m", written).hex()
    shifted = (1, iso_utc(at), "y", 'z"}},"event_type":"x","message_id":"m', '{"a":{"b":1', leaf)
    assert LeafHasher().leaves([shifted]) is None
    assert LeafHasher().leaves([row(at, "x", "m", canonical_detail(written), leaf)]) == [bytes.fromhex(leaf)]


def test_other_edits_of_the_raw_columns_are_not_accepted() -> None:
    at = datetime(2026, 11, 17, 7, tzinfo=UTC)
    detail = {"kind": "notification.encompass", "n": 3}
    leaf = rfc_leaf(at, "message.received", "m", detail).hex()
    good = row(at, "message.received", "m", canonical_detail(detail), leaf)
    hasher = LeafHasher()
    assert hasher.leaves([good]) == [bytes.fromhex(leaf)]
    for edited in (
        (*good[:1], iso_utc(at + timedelta(microseconds=1)), *good[2:]),
        (*good[:1], None, *good[2:]),
        (*good[:2], "message.receivedX", *good[3:]),
        (*good[:3], "n", *good[4:]),
        (*good[:3], None, *good[4:]),
        (*good[:4], '{"kind":"notification.encompass","n":3.0}', *good[5:]),
        (*good[:4], '{"kind":"notification.encompass","n":true}', *good[5:]),
        (*good[:4], '{"kind":"notification.encompass","n":NaN}', *good[5:]),
        (*good[:4], b'{"kind":"notification.encompass","n":3}', *good[5:]),
    ):
        assert hasher.leaves([edited]) is None, edited


@settings(max_examples=200)
@given(st.integers(0, 300), st.lists(st.integers(0, 300), max_size=6), st.integers(1, 70))
def test_tree_heads_give_the_roots_and_proofs_of_the_whole_tree(n: int, sizes: list[int], page: int) -> None:
    """The frontier kept while the leaves stream past gives what the whole tree in memory gives."""
    leaves = [leaf_hash(str(i).encode()) for i in range(n)]
    pairs = [(m, k) for m, k in itertools.pairwise(sizes) if m < k]
    heads = TreeHeads(sizes, pairs)
    for i in range(0, n, page):
        heads.extend(leaves[i : i + page])
    whole = MerkleTree(leaves)
    assert heads.size == n
    assert heads.root() == whole.root()
    for size in sizes:
        if size <= n:
            assert heads.roots[size] == whole.root(size)
    for m, k in pairs:
        if k <= n:
            assert heads.proofs[m, k] == whole.consistency_proof(m, k)
