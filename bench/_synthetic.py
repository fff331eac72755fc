"""Synthetic, invented inputs for the benchmarks: a police overnight export and a school directory.

Every name, reference and postcode here is made up (``ZZ99`` is the postcode area reserved for
fictional use). The envelopes come out of the real mapping, ``adapters.police.export.parse_export``,
so their JSON has the size and shape of what police ingest sends.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mash_broker.agencies.police.export import EXPORT_COLUMNS, parse_export
from mash_broker.contracts import Envelope
from mash_broker.core.messages import encode, headers_for

GIVEN = ("Ava", "Noah", "Lily", "Max", "Isla", "Theo", "Ruby", "Leo", "Maya", "Finn", "Esme", "Otto")
FAMILY = ("Test", "Sample", "Example", "Placeholder", "Fictional", "Madeup", "Dummy", "Specimen")
SENTENCES = (
    "Officers attended a verbal argument between two adults at the child's home.",
    "The child was present, upset but unhurt, and may be tired at school.",
    "An officer spoke with the child, who said they felt safe with their grandparent.",
    "A door was damaged during the incident; no one was arrested at the scene.",
    "The child was believed to be upstairs and did not see the argument.",
    "Please offer the child a quiet space and a trusted adult to talk to on arrival.",
)
TZ = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Record:
    """One Kafka record as police ingest sends it: key, value and headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    correlation_id: bytes


def school_urns(count: int) -> list[str]:
    return [f"{990000 + i:06d}" for i in range(count)]


def school_directory(count: int) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """Rows for ``Tx.replace_directory``: (urn, name, la_code, [(key adult name, email)])."""
    return [
        (
            urn,
            f"Bench Primary School {i}",
            "999",
            [(f"Key Adult {i}", f"key.adult.{i}@example.org"), (f"Deputy {i}", f"deputy.{i}@example.org")],
        )
        for i, urn in enumerate(school_urns(count))
    ]


def export_csv(n: int, tag: str, now: datetime, urns: list[str], seed: int = 1) -> bytes:
    """An overnight export of ``n`` rows, one child each, every child at a school in ``urns``."""
    rnd = random.Random(seed)  # noqa: S311 -- reproducible made-up data, not secrets
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(EXPORT_COLUMNS)
    for i in range(n):
        occurred = (now - timedelta(hours=2, minutes=rnd.randint(0, 600))).astimezone(TZ)
        dob = now.date().replace(year=now.year - rnd.randint(5, 15)) - timedelta(days=rnd.randint(0, 300))
        summary = " ".join(rnd.sample(SENTENCES, rnd.randint(2, 4)))
        w.writerow(
            [
                f"BENCH/{tag}/{i}",
                occurred.replace(tzinfo=None).isoformat(timespec="seconds"),
                (occurred + timedelta(minutes=20)).replace(tzinfo=None).isoformat(timespec="seconds"),
                "benchpolice",
                "domestic_abuse",
                rnd.choice(GIVEN),
                rnd.choice(FAMILY),
                dob.isoformat(),
                rnd.choice(("yes", "no", "unknown")),
                rnd.choice(urns),
                f"ZZ99 {rnd.randint(1, 9)}AA",
                summary,
            ]
        )
    return out.getvalue().encode()


def envelopes(n: int, tag: str, now: datetime, urns: list[str]) -> list[Envelope]:
    result = parse_export(export_csv(n, tag, now, urns), source=f"bench-{tag}.csv", now=now, tz=TZ)
    if result.problems or len(result.accepted) != n:
        raise RuntimeError(f"synthetic export did not parse cleanly: {result.problems[:3]}")
    return [row.envelope for row in result.accepted]


def records(envs: list[Envelope]) -> list[Record]:
    """Pre-built records, exactly as ``adapters.police.ingest.publish_rows`` sends them."""
    return [
        Record(
            key=str(e.correlation_id).encode(),
            value=encode(e).encode(),
            headers=[(k, v.encode()) for k, v in headers_for(e).items()],
            correlation_id=str(e.correlation_id).encode(),
        )
        for e in envs
    ]
