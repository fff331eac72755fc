"""Reading a record before anything acts on it (core.intake): every check is cheap, never raises, and
names fields, never values (issue 11, problems 1 and 11)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mash_broker.contracts import Envelope
from mash_broker.core.intake import (
    CONTRACT_INVALID,
    DUPLICATE_KEY,
    TOO_DEEP,
    TOO_LARGE,
    UNREADABLE,
    Unreadable,
    nesting_depth,
    read_envelope,
)


def test_nesting_is_measured_without_parsing_and_strings_do_not_count() -> None:
    assert nesting_depth(b"[" * 100_000 + b"]" * 100_000) == 100_000
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert nesting_depth(b'{"a": "\\"[[[", "b": 1}') == 1  # an escaped quote does not end the string
    assert nesting_depth(b"") == 0


def test_a_100000_deep_array_is_too_deep_not_a_recursion_error() -> None:
    read = read_envelope(b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(read, Unreadable)
    assert (read.reason, read.detail) == (TOO_DEEP, "nested 100000 deep, over the limit of 64")


def test_oversize_bytes_nuls_and_non_utf8_are_each_named() -> None:
    assert read_envelope(b" " * 1_000_001) == Unreadable(TOO_LARGE, (("(record)", "1000001 bytes"),))
    nuls = read_envelope(b"\x00" * 100)
    assert isinstance(nuls, Unreadable)
    assert (nuls.reason, nuls.detail) == (CONTRACT_INVALID, "Invalid JSON: Expecting value at line 1 column 1")
    latin = read_envelope(b'{"a": "caf\xe9"}')
    assert isinstance(latin, Unreadable)
    assert (latin.reason, latin.detail) == (CONTRACT_INVALID, "Invalid UTF-8 at byte 10")


def test_a_key_given_twice_is_refused_with_its_path_before_the_contract() -> None:
    read = read_envelope(b'{"payload": {"children": [{"given_name": "A", "given_name": "B"}]}}')
    assert read == Unreadable(DUPLICATE_KEY, (("payload.children.0.given_name", "key given more than once"),))


def test_a_duplicated_key_that_looks_like_a_name_is_not_quoted() -> None:
    read = read_envelope(b'{"Zebedee Quillfeather": 1, "Zebedee Quillfeather": 2}')
    assert isinstance(read, Unreadable)
    assert read.detail == "<key>: key given more than once"


def test_contract_problems_name_fields_never_values() -> None:
    read = read_envelope(json.dumps({"kind": "Zebedee Quillfeather"}).encode())
    assert isinstance(read, Unreadable)
    assert read.reason == CONTRACT_INVALID
    assert "message_id: Field required" in read.detail
    assert "Quillfeather" not in read.detail


@given(st.binary(max_size=2000))
def test_no_bytes_make_it_raise(raw: bytes) -> None:
    read = read_envelope(raw)
    assert isinstance(read, Envelope | Unreadable)
    if isinstance(read, Unreadable):
        assert read.reason in {TOO_LARGE, TOO_DEEP, DUPLICATE_KEY, CONTRACT_INVALID, UNREADABLE}
