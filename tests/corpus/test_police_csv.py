"""The overnight police export, as `mash police ingest` reads it: each bad row is answered with its line
and column (a rejected receipt for the force), never its value; the valid rows around it are accepted;
every data row ends as exactly one accepted row or one rejected line. Then one file holding every bad
row between valid ones goes through the real app: each valid row reaches its school, once.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mash_broker.agencies.police.export import EXPORT_COLUMNS
from mash_broker.agencies.police.ingest import publish_rows, read_export, sign_rows
from mash_broker.core.audit.keys import KeyStore

from .conftest import DOB, FAMILY, GIVEN, NOW, POSTCODE, Flow, assert_unquoted

TZ = ZoneInfo("Europe/London")
INGEST_AT = datetime(2026, 11, 17, 6, 0, tzinfo=TZ)


def good(n: int, **cells: str) -> dict[str, str]:
    """A valid row (for school 900001..900004), with ``cells`` replaced."""
    return {
        "incident_ref": f"COR/2026/{n:04d}", "occurred_at": "2026-11-16T21:40:00", "reported_at": "2026-11-16T21:55:00",
        "force": "example", "incident_type": "domestic_abuse", "child_given_name": f"Quorble{chr(97 + n % 26)}",
        "child_family_name": "Wickham", "child_dob": "2015-03-0" + str(1 + n % 9), "child_present": "yes",
        "school_urn": f"90000{1 + n % 4}", "home_postcode": "ZZ99 1AA", "summary": f"Synthetic incident {n}.",
        **cells,
    }  # fmt: skip


def bad(**cells: str) -> dict[str, str]:
    """The row under test: the synthetic markers everywhere, then the bad cell(s)."""
    markers = {"child_given_name": GIVEN, "child_family_name": FAMILY, "child_dob": DOB, "home_postcode": POSTCODE,
               "summary": f"{GIVEN} {FAMILY} was present."}  # fmt: skip
    return good(0, **{**markers, **cells})


LONG = f"{GIVEN} " * 30_000  # about 300 kB: over the cell limit, and over the csv module's own 128 KiB

# case id -> (the bad row's cells, the column the answer must name)
CASES: dict[str, tuple[dict[str, str], str]] = {
    "incident-ref-blank": ({"incident_ref": ""}, "incident_ref"),
    "incident-ref-with-a-name": ({"incident_ref": f"{GIVEN} {FAMILY}"}, "incident_ref"),
    "incident-ref-41-characters": ({"incident_ref": "R" * 41}, "incident_ref"),
    "occurred-at-words": ({"occurred_at": f"last night at {FAMILY}'s"}, "occurred_at"),
    "occurred-at-date-only": ({"occurred_at": "2026-11-16"}, "occurred_at"),
    "occurred-at-31-november": ({"occurred_at": "2026-11-31T21:40:00"}, "occurred_at"),
    "occurred-at-year-9999": ({"occurred_at": "9999-12-31T23:59:59-05:00"}, "occurred_at"),
    "occurred-at-in-the-future": (
        {"occurred_at": "2030-01-01T09:00:00", "reported_at": "2030-01-01T09:10:00"},
        "occurred_at",
    ),
    "reported-at-in-the-future": ({"reported_at": "2030-01-01T09:00:00"}, "reported_at"),
    "reported-at-before-occurred-at": ({"reported_at": "2026-11-16T20:00:00"}, "reported_at"),
    "reported-at-blank": ({"reported_at": ""}, "reported_at"),
    "force-with-spaces": ({"force": f"{FAMILY} Police"}, "force"),
    "incident-type-other": ({"incident_type": "burglary"}, "incident_type"),
    "given-name-blank": ({"child_given_name": "  "}, "child_given_name"),
    "given-name-101-characters": ({"child_given_name": GIVEN * 12}, "child_given_name"),
    "given-name-control-character": ({"child_given_name": f"{GIVEN}\x07"}, "child_given_name"),
    "given-name-newline": ({"child_given_name": f"{GIVEN}\nSmith"}, "child_given_name"),
    "family-name-blank": ({"child_family_name": ""}, "child_family_name"),
    "family-name-nul": ({"child_family_name": f"{FAMILY}\x00"}, "child_family_name"),
    "dob-words": ({"child_dob": f"{GIVEN}'s birthday"}, "child_dob"),
    "dob-30-february": ({"child_dob": "2016-02-30"}, "child_dob"),
    "dob-with-a-time": ({"child_dob": f"{DOB}T00:00"}, "child_dob"),
    "dob-after-the-incident": ({"child_dob": "2026-11-20"}, "child_dob"),
    "child-18-on-the-day": ({"child_dob": "2008-11-16"}, "child_dob"),
    "child-present-maybe": ({"child_present": "maybe"}, "child_present"),
    "urn-five-digits": ({"school_urn": "90001"}, "school_urn"),
    "urn-letters": ({"school_urn": "9000O1"}, "school_urn"),
    "postcode-not-a-postcode": ({"home_postcode": f"{FAMILY} Road"}, "home_postcode"),
    "summary-2001-characters": ({"summary": (GIVEN + " ") * 200 + "x" * 201}, "summary"),
    "summary-control-character": ({"summary": f"{GIVEN}\x1b[31m red"}, "summary"),
    "summary-over-128-kib": ({"summary": LONG}, "summary"),
    "given-name-over-128-kib": ({"child_given_name": LONG}, "child_given_name"),
}


def csv_bytes(rows: list[dict[str, str] | list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(row if isinstance(row, list) else [row[c] for c in EXPORT_COLUMNS])
    return out.getvalue().encode()


def lines_of(data: bytes) -> list[int]:
    """The physical line each data row starts on (header = 1), as the parser numbers them."""
    reader = csv.reader(io.StringIO(data.decode(), newline=""))
    next(reader)
    starts, start = [], reader.line_num + 1
    for cells in reader:
        if cells:
            starts.append(start)
        start = reader.line_num + 1
    return starts


Rows = list[dict[str, str] | list[str]]


def answered(tmp_path: Path, rows: Rows, logs: StringIO) -> tuple[list[int], dict[int, set[str]], list[int]]:
    """Ingest's parse: the accepted lines, each rejected line's fields, and where each row starts.
    Checks nothing is lost (every row accepted or answered) and nothing quoted."""
    path = tmp_path / "overnight.csv"
    data = csv_bytes(rows)
    path.write_bytes(data)
    accepted, rejected = read_export(path, now=INGEST_AT, tz=TZ)
    fields: dict[int, set[str]] = {}
    for receipt in rejected:
        assert receipt.status == "rejected"
        assert receipt.reason
        fields.setdefault(receipt.line, set()).add(str(receipt.field))
    lines = [r.line for r in accepted]
    assert sorted([*lines, *fields]) == lines_of(data), "a row neither accepted nor answered"
    assert_unquoted(*(f"{r.line} {r.field} {r.reason}" for r in rejected), logs.getvalue())
    return lines, fields, lines_of(data)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_row_is_answered_by_line_and_column_and_its_neighbours_go(
    tmp_path: Path, logs: StringIO, case: str
) -> None:
    cells, column = CASES[case]
    accepted, rejected, (before, row, after) = answered(tmp_path, [good(1), bad(**cells), good(2)], logs)
    assert accepted == [before, after]
    assert rejected == {row: {column}}


def test_a_row_with_too_few_cells_is_answered_as_its_row(tmp_path: Path, logs: StringIO) -> None:
    row = [good(0)[c] for c in EXPORT_COLUMNS[:-2]]
    accepted, rejected, _ = answered(tmp_path, [good(1), row, good(2)], logs)
    assert (accepted, rejected) == ([2, 4], {3: {"row"}})


def test_a_row_with_too_many_cells_is_answered_as_its_row(tmp_path: Path, logs: StringIO) -> None:
    row = [*(bad()[c] for c in EXPORT_COLUMNS), GIVEN]
    accepted, rejected, _ = answered(tmp_path, [good(1), row, good(2)], logs)
    assert (accepted, rejected) == ([2, 4], {3: {"row"}})


def test_the_same_child_twice_is_answered_on_the_later_line(tmp_path: Path, logs: StringIO) -> None:
    accepted, rejected, _ = answered(tmp_path, [bad(), good(1), bad()], logs)
    assert (accepted, rejected) == ([2, 3], {4: {"row"}})


def test_a_cell_over_many_lines_numbers_the_rows_after_it_as_an_editor_does(tmp_path: Path, logs: StringIO) -> None:
    multi = good(3, summary="one\ntwo\nthree")
    accepted, rejected, _ = answered(tmp_path, [good(1), multi, bad(child_present="sometimes"), good(2)], logs)
    assert (accepted, rejected) == ([2, 3, 7], {6: {"child_present"}})


def test_every_problem_of_one_row_is_named(tmp_path: Path, logs: StringIO) -> None:
    row = bad(incident_type="theft", child_present="?", school_urn="x", home_postcode=f"{GIVEN}")
    _, rejected, _ = answered(tmp_path, [good(1), row], logs)
    assert rejected == {3: {"incident_type", "child_present", "school_urn", "home_postcode"}}


@pytest.mark.asyncio(loop_scope="module")
async def test_one_file_of_every_bad_row_delivers_each_valid_row_once(
    flow: Flow, tmp_path: Path, logs: StringIO
) -> None:
    """All the cases in one file, a valid row after each, through the real app: the force gets a receipt
    per row, every valid row reaches its school exactly once, and nothing logged quotes a bad row."""
    rows: list[dict[str, str] | list[str]] = []
    for n, (cells, _) in enumerate(CASES.values(), start=10):
        rows += [bad(**cells), good(n)]
    path = tmp_path / "every-bad-row.csv"
    path.write_bytes(csv_bytes(rows))
    accepted, rejected = read_export(path, now=NOW - timedelta(hours=1), tz=TZ)
    assert (len(accepted), len({r.line for r in rejected})) == (len(CASES), len(CASES))

    broker = flow.services.broker

    async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await broker.publish(value, topic, key=key, headers={k: v.decode() for k, v in headers})

    keys = KeyStore(flow.data_dir / "keys")
    receipts = await publish_rows(sign_rows(accepted, keys), ledger=flow.ledger, send=send, timeout_s=5, attempts=1)
    await flow.services.relay.drain()

    assert Counter(r.status for r in receipts) == {"accepted": len(CASES)}
    sent = {str(r.envelope.message_id) for r in accepted}
    delivered: Counter[str] = Counter()
    for urn in ("900001", "900002", "900003", "900004"):
        rows_of = await flow.ledger.deliveries_for(f"school:{urn}")
        delivered.update(d.message_id for d in rows_of if d.message_id in sent and d.delivered_at is not None)
    assert delivered == dict.fromkeys(sent, 1)
    assert_unquoted(logs.getvalue())
