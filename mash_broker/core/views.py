"""What the CLI shows people: tables built from the ledger. Agency free text is shown as text, never markup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table
from rich.text import Text

from mash_broker.contracts import Envelope, topics
from mash_broker.contracts.payloads import Delivery
from mash_broker.core.clocks import delivery_status, read_status
from mash_broker.core.explain import Change
from mash_broker.core.records import DeliveryRecord, WithdrawnCopy

SUMMARY_WIDTH = 140


def t(value: object) -> Text:
    """A cell that is never interpreted as markup (agency text is untrusted)."""
    return Text("" if value is None else str(value))


def local(ts: datetime | None, tz: ZoneInfo) -> str:
    return ts.astimezone(tz).strftime("%a %d %b %H:%M") if ts else ""


def inbox_rows(
    deliveries: Iterable[DeliveryRecord], tz: ZoneInfo, withdrawn: Mapping[str, WithdrawnCopy] | None = None
) -> list[dict[str, Any]]:
    """One school's notifications as plain dicts (for --json and for the table). A withdrawn one keeps its
    times and says when and by whom (``withdrawn``: the ledger's withdrawn copies); its content is left out."""
    out = []
    for d in deliveries:
        env = Envelope.model_validate_json(d.envelope)
        assert isinstance(env.payload, Delivery)
        rel = {} if d.withdrawn_at else env.payload.released
        copy = (withdrawn or {}).get(d.delivery_id)
        deadline = d.notify_by
        out.append(
            {
                "message_id": d.delivery_id,
                "police_reference": rel.get("payload.police_reference"),
                "child": f"{rel.get('subject.given_name', '')} {rel.get('subject.family_name', '')}".strip(),
                "date_of_birth": rel.get("subject.date_of_birth"),
                "occurred_at": rel.get("payload.occurred_at"),
                "child_present": rel.get("payload.child_present"),
                "summary": rel.get("payload.summary_for_school"),
                "notify_by": deadline.isoformat() if deadline else None,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                "delivery_status": delivery_status(deadline, d.delivered_at).value if deadline else None,
                "read_at": d.read_at.isoformat() if d.read_at else None,
                "read_by": d.read_by,
                "read_status": read_status(deadline, d.read_at).value if deadline else None,
                "withdrawn_at": d.withdrawn_at.isoformat() if d.withdrawn_at else None,
                "withdrawn_by": topics.area_of(copy.withdrawn_by) if copy else None,  # "police"
                "withdrawn_because": copy.change if copy else None,  # corrected | withdrawn
            }
        )
    return out


def inbox_table(title: str, rows: list[dict[str, Any]], tz: ZoneInfo) -> Table:
    """The inbox as a table; each summary follows as a caption line (plain text, never markup)."""
    table = Table(title=title, title_justify="left", caption_justify="left")
    for col in ("id", "police ref", "child", "born", "incident", "present", "deadline", "delivered", "read"):
        table.add_column(col, overflow="fold")
    for r in rows:
        read = r["read_status"] or ""
        if r["read_by"]:
            read = f"{read} by {r['read_by']}"
        table.add_row(
            t(r["message_id"][:8]),
            t(r["police_reference"]),
            t(r["child"]),
            t(r["date_of_birth"]),
            t(_iso_local(r["occurred_at"], tz)),
            t(r["child_present"]),
            t(_iso_local(r["notify_by"], tz)),
            t("withdrawn" if r.get("withdrawn_at") else r["delivery_status"] or "undelivered"),
            t(read),
        )
    if rows:
        caption = Text()
        for r in rows:
            summary = r["summary"] or ""
            summary = summary if len(summary) <= SUMMARY_WIDTH else summary[: SUMMARY_WIDTH - 1] + "…"
            caption.append(f"{r['message_id'][:8]}: {summary}\n")
        table.caption = caption
    return table


def rows_table(title: str, columns: list[str], rows: list[list[object]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(t(v) for v in row))
    return table


def changes_table(title: str, changes: Iterable[Change]) -> Table:
    """Decisions that differ from the ones recorded (`mash gate what-if`, `mash replay`)."""
    return rows_table(
        title,
        ["message", "kind", "was", "would be", "recipients", "fields +", "fields -"],
        [
            [
                c.message_id[:8],
                c.kind,
                c.was,
                c.would_be,
                f"{', '.join(c.recipients_was) or '-'} -> {', '.join(c.recipients_would_be) or '-'}",
                ", ".join(c.fields_added),
                ", ".join(c.fields_removed),
            ]
            for c in changes
        ],
    )


def _iso_local(value: str | None, tz: ZoneInfo) -> str:
    return local(datetime.fromisoformat(value), tz) if value else ""
