"""The MASH board's figures: what is due today, late or unread, the queues, and weekly on-time rates.

Everything comes from the ledger: deliveries to schools (with their ``notify_by`` deadlines and the
Encompass statuses of ``broker.clocks``), open ``queue_items`` of the MASH and advice queues, and
``broker.report.front_door_report`` (the audited log) for the weekly rates, and the declared clocks
(``clocks`` table) that are past their warning time. Charts are SVG geometry
computed here, so the page needs no script; each chart's figures are also a table (its text
alternative: the chart itself is hidden from assistive technology). No child's name, date of birth
or summary is shown.

In a region, one authority's board (its MASH manager's, ``mash:<code>``) holds only that authority's part
of the log (``core.scope.area_scope``, as `mash queue | clocks | report --area` use): its schools'
deliveries, its own MASH and advice queues, the clocks of its messages and deliveries, its figures and the
refusals of its pages and notifications. Each is selected in SQL (``storage.reads.area_events`` and the
``area=`` queries), so one authority's board never reads another authority's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mash_broker.core.clocks import delivery_status, read_status
from mash_broker.core.ports import LoggedEvent
from mash_broker.core.records import QueueItem
from mash_broker.core.report import front_door_report, report_from_events
from mash_broker.storage import Ledger

WEEKS = 8
CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 560, 200, 40, 36, 12
TARGET = 0.95  # a week at or above it is drawn green, and its table row says "met"


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its week label, how many were on time of how many, the rate (None: nothing to
    measure) and SVG geometry."""

    label: str
    rate: float | None
    count: int
    on_time: int
    x: float
    y: float
    height: float
    width: float

    @property
    def percent(self) -> int | None:
        return None if self.rate is None else round(self.rate * 100)

    @property
    def met(self) -> bool:
        return self.rate is not None and self.rate >= TARGET


@dataclass(frozen=True)
class Chart:
    """A weekly rate: the bars' geometry for the SVG and the figures for the table that describes it."""

    title: str
    series: str
    bars: list[Bar]
    width: int = CHART_W
    height: int = CHART_H
    pad_left: int = PAD_L
    pad_bottom: int = PAD_B
    gridlines: list[tuple[int, float]] = field(default_factory=list)  # (percent, y)


@dataclass(frozen=True, slots=True)
class SchoolDeadline:
    """A notification to a school against its deadline: delivered and read, or not yet."""

    id: str
    urn: str
    school: str
    notify_by: datetime
    delivered_at: datetime | None
    read_at: datetime | None
    read_by: str | None
    delivery_status: str
    read_status: str
    time_left: str
    overdue: bool


@dataclass(frozen=True, slots=True)
class ClockShown:
    """A declared clock past its warning time, as the board shows it."""

    clock_id: str
    name: str
    label: str
    subject: str
    started_at: datetime
    due_at: datetime
    escalate_to: str
    breached: bool
    time_left: str
    over: str


@dataclass(frozen=True)
class Board:
    now: datetime
    due_today: list[SchoolDeadline]
    late: list[SchoolDeadline]
    unread_after_deadline: list[SchoolDeadline]
    mash_queue: list[QueueItem]
    advice_queue: list[QueueItem]
    charts: list[Chart]
    clocks: list[ClockShown] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    path: str = "/board"  # where this board is (its refresh link)
    area: str | None = None  # one authority's board (its code); None: the whole deployment's
    area_name: str = ""
    authorities: list[tuple[str, str]] = field(default_factory=list)  # (code, name): the region's boards


@dataclass(frozen=True)
class Authority:
    """Which authority's board to build: its code and name, and the page it is on."""

    code: str
    name: str
    path: str


async def build(
    ledger: Ledger,
    now: datetime,
    tz: ZoneInfo,
    authority: Authority | None = None,
    authorities: list[tuple[str, str]] | None = None,
) -> Board:
    """The board: the whole deployment's, or (``authority``) one authority's only; ``authorities`` lists the
    region's authorities' boards on the regional one."""
    code = authority.code if authority is not None else None
    events = await ledger.area_events(code) if code is not None else None  # its part of the log only
    schools = await ledger.school_names()
    due: list[SchoolDeadline] = []
    late: list[SchoolDeadline] = []
    unread: list[SchoolDeadline] = []
    today = now.astimezone(tz).date()
    for d in await ledger.school_deliveries(area=code):
        if d.notify_by is None or d.withdrawn_at:
            continue
        urn = d.recipient.split(":", 1)[1]
        deadline = d.notify_by
        row = SchoolDeadline(
            id=d.delivery_id,
            urn=urn,
            school=schools.get(urn, urn),
            notify_by=deadline,
            delivered_at=d.delivered_at,
            read_at=d.read_at,
            read_by=d.read_by,
            delivery_status=delivery_status(deadline, d.delivered_at).value,
            read_status=read_status(deadline, d.read_at).value,
            time_left=time_left(deadline - now),
            overdue=d.read_at is None and deadline < now,
        )
        if deadline.astimezone(tz).date() == today and deadline >= now and d.read_at is None:
            due.append(row)
        if row.delivery_status == "late" or (d.delivered_at is None and deadline < now):
            late.append(row)
        if d.read_at is None and deadline < now:
            unread.append(row)
    due.sort(key=lambda r: r.notify_by)
    for rows in (late, unread):
        rows.sort(key=lambda r: r.notify_by, reverse=True)
    return Board(
        now=now,
        due_today=due,
        late=late,
        unread_after_deadline=unread,
        mash_queue=await ledger.queue(f"mash:{code}" if code else "mash"),
        advice_queue=await ledger.queue(f"advice:{code}" if code else "advice"),
        charts=await weekly_charts(ledger, now, tz, area=code, events=events),
        clocks=await clocks_needing_attention(ledger, now, area=code),
        refused=await refused_access(ledger, now, area=code),
        path=authority.path if authority is not None else "/board",
        area=code,
        area_name=authority.name if authority is not None else "",
        authorities=list(authorities or ()) if authority is None else [],
    )


REFUSED_FOR = timedelta(days=7)


async def refused_access(ledger: Ledger, now: datetime, area: str | None = None) -> list[dict[str, Any]]:
    """Pages and notifications refused across a boundary (``web.access_refused`` on the audited log) in the
    last seven days, newest first; with ``area``, only the refusals of that authority's own pages and
    notifications."""
    since = now - REFUSED_FOR
    return [{"at": at, **detail} for at, detail in await ledger.refused_access_since(since, area=area)]


async def clocks_needing_attention(ledger: Ledger, now: datetime, area: str | None = None) -> list[ClockShown]:
    """Declared clocks (mash_broker/defaults/clocks.toml) still running and past their warning time: past the deadline
    first (longest over first), then the rest by deadline. Judged against ``now``, so a breach shows
    even before the clock keeper's next tick records it. Subjects are message or delivery ids only; with
    ``area``, only the clocks of that authority's messages and deliveries."""
    shown = [
        ClockShown(
            clock_id=r.clock_id,
            name=r.name,
            label=r.name.replace("_", " "),
            subject=r.subject_id,
            started_at=r.started_at,
            due_at=r.due_at,
            escalate_to=r.escalate_to,
            breached=r.breached_at is not None or r.due_at <= now,
            time_left=time_left(r.due_at - now),
            over=time_left(now - r.due_at) if r.due_at <= now else "",
        )
        for r in await ledger.clocks_past_warning(now, area=area)
    ]
    shown.sort(key=lambda r: (not r.breached, r.due_at, r.clock_id))  # earliest deadline: longest over
    return shown


def time_left(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "passed"
    hours, mins = divmod(minutes, 60)
    return f"{hours} h {mins:02d} min" if hours else f"{mins} min"


async def weekly_charts(
    ledger: Ledger,
    now: datetime,
    tz: ZoneInfo,
    weeks: int = WEEKS,
    area: str | None = None,
    events: Sequence[LoggedEvent] | None = None,
) -> list[Chart]:
    """On-time rates per week (Monday to Sunday, local), the last ``weeks`` weeks up to this one (of one
    authority's part of the log, if ``area``: ``events``, else read in SQL)."""
    local = now.astimezone(tz)
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    end = monday + timedelta(weeks=1)
    if area is not None:
        scoped = events if events is not None else await ledger.area_events(area)
        report = report_from_events(scoped, starts[0], end, tz, area=area)
    else:
        report = await front_door_report(ledger, starts[0], end, tz)

    def week_of(day: str) -> int:
        d = datetime.fromisoformat(day).replace(tzinfo=tz)
        return min(max(0, (d - starts[0]).days // 7), weeks - 1)

    delivered = [[0, 0] for _ in starts]  # [on time, all]
    read = [[0, 0] for _ in starts]
    decided = [[0, 0] for _ in starts]
    for r in report.section("encompass").records():
        w = week_of(r["day"])
        delivered[w][0] += r["delivered_on_time"]
        read[w][0] += r["read_on_time"]
        delivered[w][1] += r["notifications"]
        read[w][1] += r["notifications"]
    for r in report.section("contacts").records():
        w = week_of(r["day"])
        decided[w][0] += r["decided_within_24h"]
        decided[w][1] += r["contacts"]
    labels = [f"w/c {s.strftime('%d %b')}" for s in starts]
    return [
        chart("Encompass notifications delivered before the deadline", "delivered on time", labels, delivered),
        chart("Encompass notifications read by a Key Adult before the deadline", "read on time", labels, read),
        chart("Contacts decided within 24 hours", "decided within 24 h", labels, decided),
    ]


def chart(title: str, series: str, labels: list[str], counts: list[list[int]]) -> Chart:
    plot_h = CHART_H - PAD_B - PAD_T
    slot = (CHART_W - PAD_L) / len(labels)
    bars = []
    for i, (label, (ok, n)) in enumerate(zip(labels, counts, strict=True)):
        rate = ok / n if n else None
        h = plot_h * (rate or 0)
        bars.append(
            Bar(
                label=label,
                rate=rate,
                count=n,
                on_time=ok,
                x=PAD_L + i * slot + slot * 0.15,
                y=PAD_T + plot_h - h,
                height=h,
                width=slot * 0.7,
            )
        )
    grid = [(p, PAD_T + plot_h * (1 - p / 100)) for p in (0, 50, 100)]
    return Chart(title=title, series=series, bars=bars, gridlines=grid)
