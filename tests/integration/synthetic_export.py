"""A synthetic overnight police export: invented children at the demo directory's schools.

Every row is valid and lands at a school in ``mash_broker/demo/data/schools.csv``, so each row should end as
exactly one delivery. Names are made from invented syllables, references are unique, and times are
in the past few days (UTC, with an explicit ``Z``) so the "not in the future" check always passes.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from mash_broker.agencies.police.export import EXPORT_COLUMNS

DEMO_SCHOOLS = ("900001", "900002", "900003", "900004")
_GIVEN_A = ("Zor", "Quil", "Brix", "Yev", "Oss", "Tam", "Vel", "Kib", "Nux", "Pry", "Wem", "Jad")
_GIVEN_B = ("ana", "ett", "iro", "uma", "el", "ox", "ira", "ustin", "ika", "amon")
_FAMILY_A = ("Quorn", "Blet", "Snarv", "Grindel", "Plov", "Strum", "Wibb", "Thrand", "Yarrow", "Mudge")
_FAMILY_B = ("wick", "ham", "ley", "stone", "thorpe", "by", "combe", "worth", "ridge", "field")


@dataclass(frozen=True)
class SyntheticRow:
    """The personal data of one row, kept so tests can look for it where it must not be."""

    incident_ref: str
    given_name: str
    family_name: str
    dob: str
    postcode: str
    school_urn: str


def write_export(path: Path, rows: int, *, seed: int = 7, now: datetime | None = None) -> list[SyntheticRow]:
    """Write ``rows`` valid export rows to ``path`` and return what each row holds."""
    rng = random.Random(seed)  # noqa: S311 (invented test data, not secrets)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    written: list[SyntheticRow] = []
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(EXPORT_COLUMNS)
        for i in range(rows):
            occurred = now - timedelta(hours=2) - timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
            reported = occurred + timedelta(minutes=rng.randrange(5, 90))
            age_days = rng.randrange(5 * 365, 15 * 365)
            dob = occurred.date() - timedelta(days=age_days)
            row = SyntheticRow(
                incident_ref=f"SYN/{now:%Y}/{i + 1:05d}",
                given_name=rng.choice(_GIVEN_A) + rng.choice(_GIVEN_B),
                family_name=rng.choice(_FAMILY_A) + rng.choice(_FAMILY_B),
                dob=date.isoformat(dob),
                postcode=f"ZZ{rng.randrange(10, 99)} {rng.randrange(1, 9)}{rng.choice('ABDEFGHJ')}"
                f"{rng.choice('LNPQRSTUWXYZ')}",
                school_urn=DEMO_SCHOOLS[i % len(DEMO_SCHOOLS)],
            )
            written.append(row)
            out.writerow(
                [
                    row.incident_ref,
                    occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    reported.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "syntheticpolice",
                    "domestic_abuse",
                    row.given_name,
                    row.family_name,
                    row.dob,
                    rng.choice(("yes", "no", "unknown")),
                    row.school_urn,
                    row.postcode,
                    f"Synthetic incident {i + 1}: adults argued at home; the child may need a quiet check-in.",
                ]
            )
    return written
