"""School directory refreshes (`mash school load`) on a ledger that already holds the demo directory,
each file the demo's rows with one bad row added: refused whole by default, naming the line and column,
never the value, and changing nothing (no Key Adult lost); with ``--partial`` the valid rows around it
are loaded and the bad one is listed for a person. Both from the same file, in each case.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
import pytest_asyncio

from mash_broker.agencies.education.directory import DIRECTORY_COLUMNS
from mash_broker.app import commands
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

from .conftest import DEMO, FAMILY, GIVEN, assert_unquoted

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
DEMO_ROWS = list(csv.reader(io.StringIO((DEMO / "schools.csv").read_text())))[1:]
NEW_SCHOOL = ["900005", "Corpus Primary School", "Quin Newperson", "quin.newperson@example.org", "999"]
EMAIL = f"{GIVEN.lower()}.{FAMILY.lower()}@example.org"


def row(**cells: str) -> list[str]:
    """A Key Adult row for a new school, with the synthetic markers, then ``cells``."""
    base = {"urn": "900006", "name": "Marker Academy", "key_adult_name": f"{GIVEN} {FAMILY}",
            "key_adult_email": EMAIL, "la_code": "999", **cells}  # fmt: skip
    return [base[c] for c in DIRECTORY_COLUMNS]


# case id -> (the bad row, the column the answer names)
CASES: dict[str, tuple[list[str], str]] = {
    "urn-five-digits": (row(urn="90006"), "urn"),
    "urn-a-name": (row(urn=GIVEN), "urn"),
    "school-name-blank": (row(name=" "), "name"),
    "school-name-121-characters": (row(name=f"{FAMILY} " * 12), "name"),
    "school-name-control-character": (row(name=f"{FAMILY}\x0b Academy"), "name"),
    "key-adult-name-blank": (row(key_adult_name=""), "key_adult_name"),
    "key-adult-name-101-characters": (row(key_adult_name=GIVEN * 12), "key_adult_name"),
    "key-adult-name-nul": (row(key_adult_name=f"{GIVEN}\x00"), "key_adult_name"),
    "email-no-at": (row(key_adult_email=f"{GIVEN}.example.org"), "key_adult_email"),
    "email-two-ats": (row(key_adult_email=f"{GIVEN}@{FAMILY}@example.org"), "key_adult_email"),
    "email-a-space": (row(key_adult_email=f"{GIVEN} {FAMILY}@example.org"), "key_adult_email"),
    "email-no-dot-in-domain": (row(key_adult_email=f"{GIVEN}@localhost"), "key_adult_email"),
    "email-non-ascii": (row(key_adult_email=f"{GIVEN}@b\u00fccher.example"), "key_adult_email"),
    "email-255-characters": (row(key_adult_email=f"{GIVEN.lower() * 27}@example.org"), "key_adult_email"),
    "email-blank": (row(key_adult_email=""), "key_adult_email"),
    "la-code-two-digits": (row(la_code="99"), "la_code"),
    "la-code-letters": (row(la_code="abc"), "la_code"),
    "name-differs-for-the-same-urn": (row(urn="900005", name=f"{FAMILY} School"), "name"),
    "la-code-differs-for-the-same-urn": (row(urn="900005", name=NEW_SCHOOL[1], la_code="998"), "la_code"),
    "email-twice-at-one-school": (
        row(urn="900005", name=NEW_SCHOOL[1], key_adult_email=NEW_SCHOOL[3]),
        "key_adult_email",
    ),
    "a-typo-in-a-demo-schools-row": (
        row(urn="900001", name="Example Primary School", key_adult_email="alex.keyadult@example"),
        "key_adult_email",
    ),
    "over-long-cell": (row(key_adult_name=GIVEN * 2000), "key_adult_name"),
    "too-few-cells": (row()[:3], "row"),
    "too-many-cells": ([*row(), GIVEN], "row"),
}


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DIRECTORY_COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ledger(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ledger]:
    """One ledger for the module: each case compares the directory before and after its own loads."""
    ledger = await Ledger.open(Settings(data_dir=tmp_path_factory.mktemp("directory")).ledger_url)
    report = await commands.load_schools(ledger, DEMO / "schools.csv", NOW)
    assert report.ok
    assert report.key_adults == len(DEMO_ROWS)
    yield ledger
    await ledger.close()


async def key_adults(ledger: Ledger) -> set[tuple[str, str]]:
    async with ledger.reader() as tx:
        return {(e[0], email) for e in await tx.directory_entries() for _, email in e[3]}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_bad_row_refuses_the_load_naming_it_and_partial_loads_its_neighbours(
    ledger: Ledger, tmp_path: Path, logs: StringIO, case: str
) -> None:
    bad, column = CASES[case]
    path = tmp_path / "schools.csv"
    rows = [*DEMO_ROWS[:4], NEW_SCHOOL, bad, *DEMO_ROWS[4:]]
    path.write_bytes(csv_bytes(rows))
    bad_line = 2 + rows.index(bad)
    before = await key_adults(ledger)

    refused = await commands.load_schools(ledger, path, NOW)

    assert not refused.ok
    assert not refused.applied
    assert [(p["line"], p["field"]) for p in refused.problems] == [(bad_line, column)]
    assert await key_adults(ledger) == before  # all or nothing: no Key Adult lost, none added

    partial = await commands.load_schools(ledger, path, NOW, partial=True)

    assert partial.applied
    assert [(p["line"], p["field"]) for p in partial.problems] == [(bad_line, column)]
    after = await key_adults(ledger)
    assert after == before | {(NEW_SCHOOL[0], NEW_SCHOOL[3])}  # the valid neighbours loaded, nobody removed
    assert partial.key_adults == len(rows) - 1
    assert_unquoted(*refused.problems, *partial.problems, logs.getvalue())
