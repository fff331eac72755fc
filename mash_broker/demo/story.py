"""`mash demo`: the overnight Encompass path end to end, on the embedded broker, with a simulated clock.

The demo clock starts at 07:00 on Monday 23 November 2026 (when the force exports the weekend's
incidents) and runs at real speed; it jumps forward twice so the on-time and late cases show.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console

from mash_broker.agencies.education.inbox import Sign, record_read
from mash_broker.app import commands
from mash_broker.app.runtime import running
from mash_broker.core import views
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.records import DeliveryRecord
from mash_broker.core.settings import Settings
from mash_broker.core.signing import Signers, ensure_key
from mash_broker.demo.areas import AREAS_DIR, SCHOOLS
from mash_broker.demo.data import DEMO_DIR
from mash_broker.demo.region import demo_region, mash_lines, region_lines, school_line
from mash_broker.storage import Ledger

DEMO_FORCE = "police:examplepolice"  # the force in the demo exports: its key signs what it sends
DEMO_START = datetime(2026, 11, 23, 7, 0, tzinfo=ZoneInfo("Europe/London"))


class DemoClock:
    """Real time, shifted to a chosen start and advanced on demand."""

    def __init__(self, start: datetime) -> None:
        self.offset = start - datetime.now(start.tzinfo)

    def __call__(self) -> datetime:
        return datetime.now(DEMO_START.tzinfo) + self.offset

    def advance_to(self, when: datetime) -> None:
        self.offset += when - self()


async def _wait_delivered(ledger: Ledger, timeout_s: float = 30.0) -> list[DeliveryRecord]:
    """Wait until every shared notification has reached its school's inbox and its MASH's (``mash:<code>``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        rows = [r for r in await ledger.all_deliveries() if r.recipient.startswith(("school:", "mash:"))]
        if all(r.delivered_at for r in rows) or loop.time() > end:
            return rows
        await asyncio.sleep(0.1)


async def run_demo(settings: Settings, out: Console, data_dir: Path | None) -> int:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="mash-demo-"))
    # The demo keeps its own SQLite ledger so it never touches a configured database.
    settings = settings.model_copy(
        update={"data_dir": data_dir, "database_url": None, "key_registry": None, "areas_dir": AREAS_DIR}
    )
    tz = ZoneInfo(settings.timezone)
    clock = DemoClock(DEMO_START)
    region = demo_region(settings)
    out.rule("MASH Broker demo: Operation Encompass, overnight export to schools' Key Adults")
    out.print(f"data: {data_dir}   demo clock: {views.local(clock(), tz)} (simulated)", markup=False)
    for line in region_lines(region):
        out.print(line, markup=False)
    police_key = ensure_key(KeyStore(settings.keys_dir), settings.key_registry_file, DEMO_FORCE, clock())
    out.print(
        f"keys: {DEMO_FORCE} signs with key {police_key.key_id}; the gate checks every signature "
        f"against {settings.key_registry_file} and signs what it sends as mash:gate",
        markup=False,
    )
    async with running(settings, clock=clock) as stack:
        where = "embedded broker" if stack.embedded else "Kafka"
        out.print(f"started {where} on {stack.bootstrap}, gate, school inboxes and relay", markup=False)
        ledger = stack.ledger

        loaded = await commands.load_schools(ledger, SCHOOLS, clock())
        out.print(
            f"\n1. School directory: {loaded.schools} schools, {loaded.key_adults} Key Adults loaded", markup=False
        )

        out.print("\n2. Police ingest the overnight export at 07:00", markup=False)
        report = await commands.ingest(settings, ledger, stack.bootstrap, DEMO_DIR / "overnight-export.csv", now=clock)
        out.print(
            views.rows_table(
                "Receipts per row",
                ["line", "status", "message id", "school", "field", "reason"],
                [
                    [r.line, r.status, (r.message_id or "")[:8], r.school_urn, r.field, r.reason]
                    for r in report.receipts
                ],
            )
        )
        await _wait_delivered(ledger)

        clock.advance_to(DEMO_START.replace(hour=8, minute=40))
        out.print(f"\n3. {views.local(clock(), tz)}: Key Adults open some notifications", markup=False)
        acked = await _ack_some(ledger, clock, Signers(KeyStore(settings.keys_dir)))
        for urn, reader, mid in acked:
            out.print(f"   school {urn}: {reader} read {mid[:8]}", markup=False)

        clock.advance_to(DEMO_START.replace(hour=10, minute=30))
        out.print(f"\n4. {views.local(clock(), tz)}: a late report of a Sunday-night incident", markup=False)
        late = await commands.ingest(settings, ledger, stack.bootstrap, DEMO_DIR / "late-export.csv", now=clock)
        out.print(", ".join(f"{k}: {v}" for k, v in late.counts().items()), markup=False)
        await _wait_delivered(ledger)

        out.print("\n5. Each school's inbox", markup=False)
        summary = []
        for school in sorted(await ledger.known_school_urns()):
            info = await ledger.school(school)
            rows = views.inbox_rows(await ledger.deliveries_for(f"school:{school}"), tz)
            out.print(views.inbox_table(f"{info.name if info else school} ({school})", rows, tz))
            out.print(await school_line(ledger, region, school), markup=False)
            summary.append(_summary_row(school, rows))

        queue = await ledger.queue("mash")
        out.print(
            views.rows_table(
                f"\n6. MASH queue: {len(queue)} for a person to route (the region's: home authority not known)",
                ["message id", "reason"],
                [[q.message_id[:8], q.detail] for q in queue],
            )
        )
        for line in await mash_lines(ledger, region):
            out.print(line, markup=False)
        rejected = [r for r in report.receipts if r.status == "rejected"]
        out.print(
            views.rows_table(
                "7. Rows rejected back to police",
                ["line", "field", "reason"],
                [[r.line, r.field, r.reason] for r in rejected],
            )
        )
        out.print(
            views.rows_table(
                "8. Summary",
                [
                    "school",
                    "notifications",
                    "delivered on time",
                    "delivered late",
                    "read on time",
                    "not read by deadline",
                ],
                summary,
            )
        )
        if stack.services:
            await stack.services.relay.drain()
        acks = len(await ledger.events("delivery.received")) + len(await ledger.events("notification.read"))
        out.print(
            f"rows: {len(report.receipts) + len(late.receipts)}; acknowledgements sent to police: {acks}; "
            f"ledger events: {await ledger.count('events')}",
            markup=False,
        )
    undelivered = [r for r in summary if r[1] != r[2] + r[3]]  # type: ignore[operator]
    return 1 if undelivered else 0


async def _ack_some(ledger: Ledger, clock: DemoClock, sign: Sign) -> list[tuple[str, str, str]]:
    """The first Key Adult of every other school reads that school's newest notification."""
    done = []
    for i, urn in enumerate(sorted(await ledger.known_school_urns())):
        rows = await ledger.deliveries_for(f"school:{urn}")
        adults = await ledger.key_adults(urn)
        if i % 2 or not rows or not adults:
            continue
        row = await record_read(ledger, urn, rows[0].delivery_id, adults[0].name, clock(), sign=sign)
        done.append((urn, str(row.read_by), row.delivery_id))
        clock.advance_to(clock() + timedelta(minutes=7))
    return done


def _summary_row(urn: str, rows: list[dict[str, Any]]) -> list[object]:
    def n(key: str, value: str) -> int:
        return sum(1 for r in rows if r[key] == value)

    return [
        urn,
        len(rows),
        n("delivery_status", "on_time"),
        n("delivery_status", "late"),
        n("read_status", "on_time"),
        n("read_status", "not_yet") + n("read_status", "late"),
    ]
