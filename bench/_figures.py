"""The pace bench's figures past the relay: the morning, replay, memory, the inbox page (see transport_pace)."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import os
import signal
import statistics
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench._stack import MASH, BenchArea, Ingest, delivered, gate, ingest, rss_peak_mb, run_mash, seed
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.embedded import free_port
from mash_broker.app.web.accounts import set_password
from mash_broker.app.web.app import create_app

REPLAY_TARGET = 100_000 / 60  # messages/s: 100,000 under 60 s
PASSWORD = "correct horse battery staple"  # noqa: S105 -- a synthetic bench password


@contextlib.asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str | None]:
    """A fresh PostgreSQL database on ``url``'s server (dropped afterwards), so `mash` subprocesses can be
    pointed at it with MASH_DATABASE_URL; None stays None (SQLite)."""
    if url is None:
        yield None
        return
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@dataclass(frozen=True)
class Morning:
    rows: int
    ingest: Ingest
    delivered_s: float
    statements: int = 0  # SQL statements the gate's process ran during the morning (not the bench's polls)
    write_tx: int = 0  # write transactions (BEGIN IMMEDIATE on SQLite; 0 when not counted)

    @property
    def rate(self) -> float:
        return self.rows / self.delivered_s

    def lines(self, label: str) -> list[str]:
        i = self.ingest
        accepted = i.counts.get("accepted", 0)
        return [
            f"morning [{label}, {self.rows} rows]: police ingest exit {i.rc}, {accepted} of {self.rows} reported "
            f"accepted {dict(i.counts)}, {i.sent} copies sent, exited after {i.seconds:.1f} s; all delivered after "
            f"{self.delivered_s:.1f} s = {self.rate:,.1f} msgs/s (target: every row accepted, delivered within 15 s)",
            f"morning [{label}, {self.rows} rows]: the gate's process ran {self.statements / self.rows:.1f} SQL "
            f"statements"
            + (f" and {self.write_tx / self.rows:.2f} write transactions" if self.write_tx else "")
            + " per message (gate, school inbox, relay; the bench's own polls not counted)",
        ]


class StatementCount:
    """SQL statements on ``ledger``'s engine, and SQLite write transactions among them (BEGIN IMMEDIATE)."""

    def __init__(self, ledger: Any) -> None:
        self.statements = self.write_tx = 0
        self.on = False
        event.listen(ledger.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on:
            self.statements += 1
            self.write_tx += statement.startswith("BEGIN IMMEDIATE")


async def morning(area: BenchArea, bootstrap: str, rows: int, profile: cProfile.Profile | None) -> Morning:
    """`mash police ingest` of ``rows`` against the gate in this process; timed until all are delivered."""
    ledger = await area.open_ledger()
    try:
        async with gate(area, ledger, bootstrap):
            warm = await ingest(area, area.export(1, "warm"))
            await delivered(ledger, 1, 120)
            if warm.rc != 0:
                raise RuntimeError(f"the warm-up ingest exited {warm.rc}: {warm.counts}")
            base, path = await ledger.delivered_count(), area.export(rows, "morning")
            loop = asyncio.get_running_loop()
            counted, polls = StatementCount(ledger), [0]
            count_delivered = ledger.delivered_count

            async def polled() -> int:
                polls[0] += 1
                return await count_delivered()

            ledger.delivered_count = polled  # type: ignore[method-assign]
            if profile:
                profile.enable()
            counted.on = True
            t0 = loop.time()
            run = asyncio.create_task(ingest(area, path))
            try:
                t_all = await delivered(ledger, base + rows, 120 + rows / 5)
                result = await run
            finally:
                counted.on = False
                if profile:
                    profile.disable()
            # Each poll of the bench is one read: BEGIN (SQLite) and its SELECT.
            own = counted.statements - polls[0] * (2 if ledger.engine.dialect.name == "sqlite" else 1)
            m = Morning(rows, result, t_all - t0, statements=own, write_tx=counted.write_tx)
            for line in m.lines("PostgreSQL" if area.url else "SQLite"):
                print(f"  {line}", flush=True)
            return m
    finally:
        await ledger.close()


async def replay(area: BenchArea, n: int) -> list[str]:
    ledger = await area.open_ledger()
    try:
        seeded = await seed(area, ledger, n, "replay")
    finally:
        await ledger.close()
    print(f"  replay: {n} messages recorded through the gate's handler in {seeded:.1f} s", flush=True)
    window = ("--from", (area.now - timedelta(days=1)).isoformat(), "--to", (area.now + timedelta(days=1)).isoformat())
    lines = []
    for label, extra in (("replay_dry_run", ("--dry-run",)), ("replay", ())):
        rc, out, seconds, _ = await run_mash(area, "replay", *window, *extra, "--json")
        plan = json.loads(out) if rc == 0 else {}
        rate = n / seconds
        lines.append(
            f"{label} [{n} messages] = {seconds:.1f} s = {rate:,.0f} msgs/s, exit {rc}, selected "
            f"{plan.get('selected')}, published {plan.get('published')}; /target = {rate / REPLAY_TARGET:.3f} "
            f"(target 100,000 under 60 s)"
        )
        print(f"  {lines[-1]}", flush=True)
    return lines


async def ingest_memory(area: BenchArea, megabytes: float) -> list[str]:
    sample = area.export(200, "sample").stat().st_size / 200
    rows = max(1, int(megabytes * 1e6 / sample))
    path = area.export(rows, "large")
    size = path.stat().st_size / 1e6
    result = await ingest(area, path, MASH_RECEIPT_TIMEOUT_S="1", MASH_SEND_ATTEMPTS="1")  # no gate: gives up
    line = (
        f"ingest_peak_rss [{size:.1f} MB, {rows} rows] = {result.peak_rss_mb:.0f} MB, in {result.seconds:.1f} s "
        f"(target < 200 MB for a 50 MB file)"
    )
    print(f"  {line}", flush=True)
    return [line]


async def up_memory(area: BenchArea, n: int) -> list[str]:
    """Peak RSS of `mash up` (its own embedded broker) over a ledger of ``n`` messages, once it is ready."""
    ledger = await area.open_ledger()
    try:
        await seed(area, ledger, n, "up")
        entries = await ledger.count("events")
    finally:
        await ledger.close()
    health = free_port()
    env = area.env(MASH_WEB_PORT=str(free_port()), MASH_HEALTH_PORT=str(health))
    proc = subprocess.Popen([MASH, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220 -- started, not waited for here
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{health}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise TimeoutError("mash up was not ready after 120 s")
        await asyncio.sleep(5)  # the clocks, the projector and the relay have looked at the whole ledger
        peak = rss_peak_mb(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    line = f"up_peak_rss [{n} messages, {entries} ledger entries] = {peak:.0f} MB (target < 300 MB at 1M entries)"
    print(f"  {line}", flush=True)
    return [line]


async def inbox(area: BenchArea, n: int) -> list[str]:
    """Server time of one school's GET /inbox holding ``n`` notifications (web app in process, over ASGI)."""
    ledger = await area.open_ledger()
    try:
        seeded = await seed(area, ledger, n, "inbox", urns=area.urns[:1])
        await set_password(ledger, area.urns[0], "Key Adult 0", PASSWORD, utc_now())
        app = create_app(area.settings(), ledger, clock=utc_now, sign=None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
            page = (await c.get("/login")).text
            csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            r = await c.post("/login", data={"login": "key.adult.0@example.org", "password": PASSWORD, "csrf": csrf})
            if r.status_code != 303:
                raise RuntimeError(f"sign-in answered {r.status_code}")
            times, size = [], 0
            loop = asyncio.get_running_loop()
            for _ in range(7):
                t0 = loop.time()
                r = await c.get("/inbox")
                times.append(loop.time() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"GET /inbox answered {r.status_code}")
                size = len(r.content)
    finally:
        await ledger.close()
    best, median = min(times) * 1000, statistics.median(times) * 1000
    line = (
        f"inbox_page [{n} notifications, {size / 1e6:.1f} MB of HTML] = {best:.0f} ms best, {median:.0f} ms median; "
        f"/target = {median / 200:.2f} (target < 200 ms)"
    )
    print(f"  inbox: {n} notifications seeded in {seeded:.1f} s\n  {line}", flush=True)
    return [line]
