"""`mash school ...`: the education adapter's directory and inboxes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from mash_broker.agencies.education.directory import DirectoryChanges, KeyAdultChange, SharedEmail
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
    remove_missing: Annotated[
        bool, typer.Option("--remove-missing", help="Remove schools and Key Adults the file leaves out.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    partial: Annotated[bool, typer.Option("--partial", help="Load the valid rows even if others are refused.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load (or refresh) the school directory, all or nothing: any invalid row and nothing changes.
    Prints what changes; schools and Key Adults the file leaves out are kept unless --remove-missing."""
    cfg = settings()
    report = with_ledger(
        cfg,
        lambda ledger: commands.load_schools(
            ledger, file, utc_now(), remove_missing=remove_missing, partial=partial, dry_run=dry_run
        ),
    )
    refused = bool(report.problems) and not partial
    diff = [] if refused else diff_lines(report.changes)
    warnings = [
        {"code": "email_at_two_schools", "schools": [u for u, _ in w.schools], "lines": list(w.lines), "message": m}
        for w, m in ((w, warning_line(w)) for w in report.warnings)
    ]
    for w in warnings:
        err.print(w["message"], markup=False)
    if as_json:
        print_json(
            {
                "source": report.source,
                "schools": report.schools,
                "key_adults": report.key_adults,
                "problems": report.problems,
                "ok": report.ok,
                "applied": report.applied,
                "dry_run": report.dry_run,
                "changes": report.changes.counts(),
                "diff": diff,
                "warnings": warnings,
            }
        )
    else:
        for line in diff:
            out.print(line, markup=False)
        if report.changes.schools_kept or report.changes.key_adults_kept:
            why = "a refused row may be the one left out" if report.problems else "use --remove-missing to remove them"
            out.print(f"(kept: the file leaves them out; {why})", markup=False)
        for p in report.problems:
            out.print(f"line {p['line']}, field {p['field']}: {p['reason']}", markup=False)
        out.print(outcome_line(report, refused=refused), markup=False)
    raise typer.Exit(0 if report.ok else EXIT_ROWS_REJECTED)


def outcome_line(report: commands.LoadReport, *, refused: bool) -> str:
    """The last line: what was written, or why nothing was."""
    if refused:
        return (
            f"refused: {_rows(report)} with problems; nothing was changed"
            " (fix them and load again, or load the valid rows with --partial)"
        )
    done = f"{report.schools} schools, {report.key_adults} Key Adults"
    rest = f"; {_rows(report)} refused" if report.problems else ""
    if report.dry_run:
        return f"dry run: nothing was written (would load {done}{rest})"
    return f"loaded {done}{rest}"


def _rows(report: commands.LoadReport) -> str:
    n = len({p["line"] for p in report.problems})
    return f"{n} row" if n == 1 else f"{n} rows"


def diff_lines(c: DirectoryChanges) -> list[str]:
    """What a load changes, one line each: + added, ~ changed, - removed, = not in the file, kept."""
    lines = [
        f"schools: {len(c.schools_added)} added, {len(c.schools_changed)} changed, {len(c.schools_removed)} removed,"
        f" {len(c.schools_kept)} not in the file (kept)",
        f"Key Adults: {len(c.key_adults_added)} added, {len(c.key_adults_changed)} changed,"
        f" {len(c.key_adults_removed)} removed, {len(c.key_adults_kept)} not in the file (kept)",
    ]
    lines += [f"+ school {s.urn} {s.name} (la {s.la_code})" for s in c.schools_added]
    for ch in c.schools_changed:
        was = [f"name was {ch.was_name}"] if ch.name != ch.was_name else []
        was += [f"la_code was {ch.was_la_code}"] if ch.la_code != ch.was_la_code else []
        lines.append(f"~ school {ch.urn} {ch.name}: {', '.join(was)}")
    lines += [f"- school {s.urn} {s.name}" for s in c.schools_removed]
    lines += [f"= school {s.urn} {s.name}: not in the file, kept" for s in c.schools_kept]

    def adult(mark: str, a: KeyAdultChange, tail: str = "") -> str:
        return f"{mark} Key Adult at {a.urn} {a.school}: {a.name} <{a.email}>{tail}"

    lines += [adult("+", a) for a in c.key_adults_added]
    lines += [adult("~", a, f" (was {a.was})") for a in c.key_adults_changed]
    lines += [adult("-", a) for a in c.key_adults_removed]
    lines += [adult("=", a, ": not in the file, kept") for a in c.key_adults_kept]
    return lines


def warning_line(shared: SharedEmail) -> str:
    """A warning naming the schools (and file lines) that share a Key Adult email; not the email or name."""
    schools = " and ".join(f"{urn} {name}" for urn, name in shared.schools)
    lines = f" (lines {', '.join(map(str, shared.lines))})" if shared.lines else ""
    return (
        f"warning: one Key Adult email is listed at {schools}{lines}: the web sign-in (OIDC) refuses an email"
        " the directory lists at more than one school, so that Key Adult cannot sign in with it"
    )


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
