"""`mash send`'s input, each bad record between valid ones: answered with its number (its line, for JSON
Lines; its place, for an array), the field and a reason, never a value; the valid records around it are
read to be sent; every record is either sent or answered. Then one file of every bad record goes through
`mash send`'s own sending code onto the real app: each valid record gets the gate's receipt.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import RowReceipt
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app import message_file
from mash_broker.core.intake import MAX_DEPTH
from mash_broker.core.messages import MAX_MESSAGE_BYTES
from mash_broker.core.settings import Settings

from .conftest import DOB, FAMILY, GIVEN, Flow, assert_unquoted, contact_doc, notification_doc

Doc = dict[str, Any]


def _set(path: str, value: object) -> Callable[[Doc], bytes]:
    def make(doc: Doc) -> bytes:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value
        return json.dumps(doc).encode()

    return make


def _drop(path: str) -> Callable[[Doc], bytes]:
    def make(doc: Doc) -> bytes:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]
        return json.dumps(doc).encode()

    return make


def _twice(doc: Doc) -> bytes:
    return (
        json.dumps(doc).replace(f'"given_name": "{GIVEN}"', f'"given_name": "{DOB}", "given_name": "{GIVEN}"').encode()
    )


def _nested(depth: int) -> Callable[[Doc], bytes]:
    def make(doc: Doc) -> bytes:
        inner: Any = GIVEN
        for _ in range(depth):
            inner = [inner]
        return json.dumps({**doc, "extra": inner}).encode()

    return make


# case id -> (make the record's line from a valid document, the field the answer names)
CASES: dict[str, tuple[Callable[[Doc], bytes], str]] = {
    "not-json": (lambda d: f"{GIVEN} {FAMILY}, not JSON".encode(), "(record)"),
    "truncated": (lambda d: json.dumps(d).encode()[:-30], "(record)"),
    "not-utf-8": (lambda d: json.dumps(d).encode().replace(GIVEN.encode(), b"\xc3\x28" + GIVEN.encode()), "(record)"),
    "nul-bytes": (lambda d: b"\x00" * 64, "(record)"),
    "json-string": (lambda d: json.dumps(f"{GIVEN} {FAMILY}").encode(), "(record)"),
    "json-number": (lambda d: b"12345", "(record)"),
    "json-null": (lambda d: b"null", "(record)"),
    "json-array-in-json-lines": (lambda d: json.dumps([d]).encode(), "(record)"),
    "key-given-twice": (_twice, "subject.given_name"),
    "100000-deep": (lambda d: b"[" * 100_000 + json.dumps(GIVEN).encode() + b"]" * 100_000, "(record)"),
    "one-over-the-depth-limit": (_nested(MAX_DEPTH), "(record)"),
    "over-the-size-limit": (_set("payload.what_happened", GIVEN * (MAX_MESSAGE_BYTES // 8)), "(record)"),
    "no-message-id": (_drop("message_id"), "message_id"),
    "message-id-not-a-uuid": (_set("message_id", GIVEN), "message_id"),
    "no-correlation-id": (_drop("correlation_id"), "correlation_id"),
    "produced-at-words": (_set("produced_at", f"when {GIVEN} called"), "produced_at"),
    "sender-org-a-name": (_set("sender_org", f"{GIVEN} {FAMILY}"), "sender_org"),
    "dob-not-a-date": (_set("subject.date_of_birth", FAMILY), "subject.date_of_birth"),
    "subject-unknown-field": (_set("subject.nickname", GIVEN), "subject.nickname"),
    "unknown-top-level-field": (_set("nickname", GIVEN), "nickname"),
    "kind-a-name": (_set("kind", f"{GIVEN} {FAMILY}"), "(record)"),  # the reason names kind
    "article6-unknown": (_set("lawful_basis.article6", GIVEN), "lawful_basis.article6"),
    "no-payload": (_drop("payload"), "payload"),
    "recipients-not-a-list": (_set("recipients", GIVEN), "recipients"),
    "consent-sought-not-a-boolean": (_set("payload.consent_sought", GIVEN), "payload.contact.consent_sought"),
}


def _lines(records: list[bytes]) -> bytes:
    return b"\n".join(records) + b"\n"


def read(path: Path) -> tuple[list[int], dict[int, set[str]], list[RowReceipt]]:
    items = list(message_file.read_records(path))
    sent = [i.line for i in items if isinstance(i, ParsedRow)]
    receipts = [i for i in items if isinstance(i, RowReceipt)]
    answered: dict[int, set[str]] = {}
    for r in receipts:
        assert r.status == "rejected", r
        assert r.reason, r
        answered.setdefault(r.line, set()).add(str(r.field))
    return sent, answered, receipts


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_json_line_is_answered_by_number_and_field_and_its_neighbours_go(
    tmp_path: Path, logs: StringIO, case: str
) -> None:
    make, field = CASES[case]
    path = tmp_path / "records.jsonl"
    path.write_bytes(_lines([json.dumps(contact_doc("la:999")).encode(), make(contact_doc("la:999")),
                             json.dumps(notification_doc()).encode()]))  # fmt: skip

    sent, answered, receipts = read(path)

    assert sent == [1, 3]
    assert set(answered) == {2}
    assert field in answered[2], answered
    assert_unquoted(*(f"{r.field} {r.reason}" for r in receipts), logs.getvalue())


ARRAY_CASES: dict[str, tuple[bytes, int, str]] = {
    # the array's text between two valid elements, the bad element's number, the field named
    "element-not-an-object": (json.dumps(GIVEN).encode(), 2, "(record)"),
    "element-key-given-twice": (_twice(contact_doc("la:999")), 2, "subject.given_name"),
    "element-missing-kind": (_drop("kind")(contact_doc("la:999")), 2, "kind"),
    "element-deep": (b"[" * 5000 + b"]" * 5000, 2, "(record)"),
    "element-string-holding-brackets": (json.dumps(f"[{{{GIVEN}").encode(), 2, "(record)"),
    "element-empty-object": (b"{}", 2, "message_id"),
}


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_a_bad_element_of_an_array_is_answered_by_its_place(tmp_path: Path, logs: StringIO, case: str) -> None:
    element, number, field = ARRAY_CASES[case]
    path = tmp_path / "records.json"
    good = [json.dumps(contact_doc("la:999")).encode(), json.dumps(notification_doc()).encode()]
    path.write_bytes(b"[\n  " + b",\n  ".join([good[0], element, good[1]]) + b"\n]\n")

    sent, answered, receipts = read(path)

    assert sent == [1, 3]
    assert set(answered) == {number}
    assert field in answered[number], answered
    assert_unquoted(*(f"{r.field} {r.reason}" for r in receipts), logs.getvalue())


def test_an_array_cut_off_inside_its_last_record_answers_that_record(tmp_path: Path, logs: StringIO) -> None:
    path = tmp_path / "records.json"
    path.write_bytes(
        b"[" + json.dumps(contact_doc("la:999")).encode() + b"," + json.dumps(contact_doc("la:999")).encode()[:-20]
    )
    sent, answered, _ = read(path)
    assert (sent, set(answered)) == ([1], {2})


def test_a_json_line_over_the_limit_is_answered_without_being_held(tmp_path: Path, logs: StringIO) -> None:
    path = tmp_path / "records.jsonl"
    huge = b'{"x": "' + GIVEN.encode() * (3 * MAX_MESSAGE_BYTES // len(GIVEN)) + b'"}'
    path.write_bytes(
        _lines([json.dumps(contact_doc("la:999")).encode(), huge, json.dumps(contact_doc("la:999")).encode()])
    )
    sent, answered, receipts = read(path)
    assert (sent, answered) == ([1, 3], {2: {"(record)"}})
    assert "bytes" in str(receipts[0].reason)


@pytest.mark.asyncio(loop_scope="module")
async def test_one_file_of_every_bad_record_is_answered_and_each_valid_one_receipted(
    flow: Flow, tmp_path: Path, logs: StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mash send`'s sending code (message_file.send_records) on every case in one file, a valid record
    after each, onto the real app: one receipt per record, the valid ones accepted by the gate."""
    records: list[bytes] = [json.dumps(contact_doc("la:999")).encode()]  # a file must start as JSON
    for make, _ in CASES.values():
        records += [make(contact_doc("la:999")), json.dumps(contact_doc("la:999")).encode()]
    path = tmp_path / "every-bad-record.jsonl"
    path.write_bytes(_lines(records))

    broker = flow.services.broker

    class Producer:
        async def send(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> None:
            await broker.publish(value, topic, key=key, headers={k: v.decode() for k, v in headers})

        async def flush(self) -> None:
            await flow.services.relay.drain()

    @asynccontextmanager
    async def producer(_settings: Settings, _bootstrap: str) -> AsyncIterator[Producer]:
        yield Producer()

    monkeypatch.setattr(message_file, "producer", producer)
    answers: list[RowReceipt] = []
    settings = Settings(data_dir=flow.data_dir, receipt_timeout_s=5, send_attempts=1)
    counts = await message_file.send_records(
        settings, flow.ledger, "in-memory", path,
        topic_for=lambda env: REGISTRY.inbound_topic(env.sender_org, env.kind), emit=answers.extend,
    )  # fmt: skip

    assert counts["accepted"] == len(CASES) + 1
    assert {r.line for r in answers} == set(range(1, 2 * len(CASES) + 2))  # every record answered
    assert {r.line for r in answers if r.status == "accepted"} == {1, *range(3, 2 * len(CASES) + 2, 2)}
    assert_unquoted(*(f"{r.field} {r.reason}" for r in answers), logs.getvalue())
