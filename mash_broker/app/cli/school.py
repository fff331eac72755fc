"""`mash school ...`: the education adapter's directory and inboxes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from mash_broker.agencies.education.inbox import record_read
from mash_broker.app import commands
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_NOT_FOUND, EXIT_ROWS_REJECTED, err, out, print_json, settings, with_ledger
from mash_broker.core import views
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.records import DeliveryRecord, School
from mash_broker.core.signing import Signers
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The education adapter: directory and inboxes.")


@app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="School directory CSV: urn,name,key_adult_name,key_adult_email,la_code")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load (or refresh) the school directory; invalid rows are reported and not loaded."""
    cfg = settings()
    report = with_ledger(cfg, lambda ledger: commands.load_schools(ledger, file, utc_now()))
    if as_json:
        print_json(
            {
                "source": report.source,
                "schools": report.schools,
                "key_adults": report.key_adults,
                "problems": report.problems,
                "ok": report.ok,
            }
        )
    else:
        out.print(f"loaded {report.schools} schools, {report.key_adults} Key Adults", markup=False)
        if report.problems:
            out.print(
                views.rows_table(
                    "Rows not loaded",
                    ["line", "field", "reason"],
                    [[p["line"], p["field"], p["reason"]] for p in report.problems],
                )
            )
    raise typer.Exit(0 if report.ok else EXIT_ROWS_REJECTED)


@app.command("inbox")
def inbox(
    urn: Annotated[str, typer.Argument(help="The school's six-digit URN.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A school's notifications, newest first, with deadline and on-time status."""
    cfg = settings()
    tz = ZoneInfo(cfg.timezone)

    async def work(ledger: Ledger) -> tuple[School | None, list[DeliveryRecord]]:
        return await ledger.school(urn), await ledger.deliveries_for(f"school:{urn}")

    school, deliveries = with_ledger(cfg, work)
    if school is None:
        err.print(f"not found: school {urn} is not in the directory", markup=False)
        raise typer.Exit(EXIT_NOT_FOUND)
    rows = views.inbox_rows(deliveries, tz)
    if as_json:
        print_json({"urn": urn, "school": school.name, "notifications": rows})
    else:
        out.print(views.inbox_table(f"{school.name} ({urn}): {len(rows)} notifications", rows, tz))


@app.command("ack")
def ack(
    urn: Annotated[str, typer.Argument()],
    message_id: Annotated[str, typer.Argument(help="The notification's id (or its first 8 characters).")],
    by: Annotated[str, typer.Option("--by", help="The Key Adult who read it.")],
) -> None:
    """Record that a Key Adult read a notification; an acknowledgement goes back to police."""
    cfg = settings()
    sign = Signers(KeyStore(cfg.keys_dir))  # the school's own key if it has one, else the gate's on its behalf
    row = with_ledger(cfg, lambda ledger: record_read(ledger, urn, message_id, by, utc_now(), sign=sign))
    if row.already_read:
        out.print(f"already read by {row.read_by} at {row.read_at.isoformat() if row.read_at else ''}", markup=False)
    else:
        out.print(f"recorded: {row.delivery_id[:8]} read by {row.read_by}; police will be told", markup=False)
