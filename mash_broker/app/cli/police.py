"""`mash police ...`: the police adapter's commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.progress import Progress

from mash_broker.agencies.police.ingest import IngestReport
from mash_broker.app import commands
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_ROWS_REJECTED, out, print_json, run, settings, with_ledger
from mash_broker.app.embedded import resolve_bootstrap
from mash_broker.app.kafka_refusals import explained
from mash_broker.app.runtime import open_ledger
from mash_broker.core import views
from mash_broker.core.records import SenderStatusLine
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The police adapter.")


@app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(help="Overnight export CSV (one row per child per incident).")],
    as_json: Annotated[bool, typer.Option("--json", help="Receipts as JSON for machines.")] = False,
) -> None:
    """Publish an overnight export; print a receipt per row; exit 1 if any row was not accepted."""
    cfg = settings()

    async def main() -> IngestReport:
        bootstrap = resolve_bootstrap(cfg)
        ledger = await open_ledger(cfg)
        try:
            if sys.stdout.isatty() and not as_json:
                with Progress(transient=True) as bar:
                    task = bar.add_task("waiting for the gate's receipts", total=None)

                    def progress(done: int, total: int) -> None:
                        bar.update(task, completed=done, total=total)

                    return await commands.ingest(cfg, ledger, bootstrap, file, now=utc_now, progress=progress)
            return await commands.ingest(cfg, ledger, bootstrap, file, now=utc_now)
        finally:
            await ledger.close()

    show_receipts(run(lambda: explained(cfg, main())), file, as_json, place="line", school=True)


def show_receipts(report: IngestReport, file: Path, as_json: bool, *, place: str, school: bool) -> None:
    """A receipt per row (or record); exit 1 if any was not accepted."""
    if as_json:
        print_json(report.as_json())
    else:
        columns = [place, "status", "message id", *(["school"] if school else []), "field", "reason"]
        out.print(
            views.rows_table(
                f"Receipts for {file.name}",
                columns,
                [
                    [r.line, r.status, (r.message_id or "")[:8], *([r.school_urn] if school else []), r.field, r.reason]
                    for r in report.receipts
                ],
            )
        )
        out.print(", ".join(f"{k}: {v}" for k, v in sorted(report.counts().items())), markup=False)
    raise typer.Exit(0 if report.ok else EXIT_ROWS_REJECTED)


@app.command("status")
def status(
    force: Annotated[str | None, typer.Option(help="Only this force's messages (e.g. examplepolice).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What police sent and what became of it: the gate's verdict, delivered and read, against the deadline."""
    cfg = settings()

    async def work(ledger: Ledger) -> list[SenderStatusLine]:
        return await ledger.sender_status(f"police:{force.lower()}" if force else None)

    rows = [r for r in with_ledger(cfg, work) if r.sender_org.startswith("police:")]
    if as_json:
        print_json(rows)
        return
    tz = ZoneInfo(cfg.timezone)
    out.print(
        views.rows_table(
            f"Police notifications: {len(rows)}",
            ["message id", "police ref", "verdict", "to", "deadline", "delivered", "read by", "read"],
            [
                [
                    r.message_id[:8],
                    r.sender_local_id,
                    r.verdict,
                    r.recipient or ("MASH queue" if r.verdict == "refer" else ""),
                    views.local(r.notify_by, tz),
                    views.local(r.delivered_at, tz),
                    r.read_by,
                    views.local(r.read_at, tz),
                ]
                for r in rows
            ],
        )
    )
