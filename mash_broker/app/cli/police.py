"""`mash police ...`: the police adapter's commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, cast, get_args
from zoneinfo import ZoneInfo

import typer
from rich.progress import Progress

from mash_broker.agencies.police.ingest import IngestReport
from mash_broker.agencies.police.versions import withdrawal_of
from mash_broker.app import commands
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_ROWS_REJECTED, EXIT_UNUSABLE, out, print_json, run, settings, with_ledger
from mash_broker.app.embedded import resolve_bootstrap
from mash_broker.app.kafka_refusals import explained
from mash_broker.app.runtime import open_ledger
from mash_broker.contracts import NotFound
from mash_broker.contracts.corrections import WithdrawalReason
from mash_broker.core import views
from mash_broker.core.records import NotificationHead, SenderStatusLine
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The police adapter.")
REASONS: tuple[str, ...] = get_args(WithdrawalReason)


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


@app.command("withdraw")
def withdraw(
    ref: Annotated[str, typer.Argument(help="The incident reference the notification was sent under.")],
    child: Annotated[
        str | None,
        typer.Argument(
            help="Which child's notification: its message id, or 8+ characters of it, from `mash police status`. "
            "Needed when the incident has more than one."
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help=f"Why: {', '.join(REASONS)}.")] = "sent_in_error",
    force: Annotated[str | None, typer.Option(help="Only this force's notifications (e.g. examplepolice).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The receipt as JSON for machines.")] = False,
) -> None:
    """Withdraw a notification sent in error: each copy is withdrawn (one already delivered is hidden from the
    school's inbox and its school sent a content-free notice); print the gate's receipt; exit 1 if refused,
    4 if no such notification. To send a corrected version instead, ingest the corrected row."""
    cfg = settings()
    if reason not in REASONS:
        out.print(f"unusable: --reason must be one of {', '.join(REASONS)}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    why = cast(WithdrawalReason, reason)

    async def main() -> IngestReport:
        bootstrap = resolve_bootstrap(cfg)
        ledger = await open_ledger(cfg)
        try:
            heads = await ledger.incident_notifications(ref, f"police:{force.lower()}" if force else None)
            head = _chosen(heads, ref, child)
            return await commands.withdraw(cfg, ledger, bootstrap, withdrawal_of(head, now=utc_now(), reason=why))
        finally:
            await ledger.close()

    show_receipts(
        run(lambda: explained(cfg, main())), Path(f"withdrawal of {ref}"), as_json, place="record", school=False
    )


def _chosen(heads: list[NotificationHead], ref: str, child: str | None) -> NotificationHead:
    """The notification ``child`` names among the incident's (the only one, if not named)."""
    wanted = (child or "").strip().lower()
    if child is not None:
        heads = [h for h in heads if len(wanted) >= 8 and any(i.startswith(wanted) for i in _ids(h))]
    if not heads:
        raise NotFound(f"no notification {child or ''} was sent under incident {ref}".replace("  ", " "), record=ref)
    if len(heads) > 1:
        listed = ", ".join(h.message_id[:8] for h in heads)
        raise NotFound(f"incident {ref} has {len(heads)} notifications ({listed}): name one as CHILD", record=ref)
    if heads[0].withdrawn:
        raise NotFound(
            f"notification {heads[0].notification_id[:8]} of incident {ref} is already withdrawn", record=ref
        )
    return heads[0]


def _ids(head: NotificationHead) -> tuple[str, ...]:
    """Any of a notification's ids names it: its first version's, the current one's."""
    return head.notification_id, head.message_id, head.content_message_id


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
