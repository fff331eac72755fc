"""The real app in-process for the web tests: SQLite ledger, the gate, the school inbox and the relay on an
in-memory TestKafkaBroker, the clock keeper, the web pages on a free loopback port, an SMTP sink for alerts; all on one
event loop in a background thread (selenium is blocking), shared by a module. ``call`` runs a
coroutine on that loop. The clock is the test's: it starts at 07:00 on Monday 23 November 2026.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from faststream.kafka import TestKafkaBroker

from mash_broker.agencies.police.ingest import publish_rows, read_export, sign_rows
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app import alerts, commands
from mash_broker.app.bootstrap import Services, build_broker, build_services
from mash_broker.app.embedded import free_port
from mash_broker.app.web.accounts import set_password
from mash_broker.app.web.server import WebServer, start_web
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.clocks.keeper import start_clock_keeper
from mash_broker.core.logging import configure_logging
from mash_broker.core.projector import Projector
from mash_broker.core.settings import Settings
from mash_broker.core.signing import Signers, ensure_gate_key, ensure_key
from mash_broker.storage import Ledger, Tx


@pytest.fixture(autouse=True)
def _info_logging() -> None:
    """The pages' tests read their refusals from the log: an earlier test (``mash demo`` logs at WARNING)
    must not leave the level raised."""
    configure_logging("INFO")


T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "mash_broker" / "demo" / "data"
LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 11, 23, 7, 0, tzinfo=LONDON)
PASSWORD = "correct horse battery staple"  # noqa: S105  # a synthetic test password
SCREENSHOTS = ROOT / "tests" / "output" / "screenshots"
SCRIPT_SUMMARY = "Officer note <script>document.title='pwned'</script> & <b>bold</b> text."


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Sink:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class WebStack:
    """One running app for a module: ledger, services, web pages, SMTP sink, clock."""

    def __init__(self, tmp: Path, *, schools: Path = DEMO / "schools.csv", **settings: Any) -> None:
        self.tmp = tmp
        self.schools, self.extra = schools, settings  # the directory, and more settings (a region's areas_dir)
        self.clock = Clock(START)
        self.sink = Sink()
        self.smtp = Controller(self.sink, hostname="127.0.0.1", port=free_port())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self.ledger: Ledger
        self.services: Services
        self.web: WebServer
        self.settings: Settings
        self.sender: alerts.AlertSender
        self.projector: Projector[Tx]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> None:
        self.smtp.start()
        self.thread.start()
        ready: Future[None] = Future()
        asyncio.run_coroutine_threadsafe(self._main(ready), self.loop)
        ready.result(60)

    async def _main(self, ready: Future[None]) -> None:
        try:
            self.settings = Settings(
                data_dir=self.tmp / "data",
                web_port=0,
                smtp_host="127.0.0.1",
                smtp_port=self.smtp.port,
                smtp_from="mash@test.example",
                **self.extra,
            )
            self.settings.data_dir.mkdir(parents=True)
            self.ledger = await Ledger.open(self.settings.ledger_url)
            await commands.load_schools(self.ledger, self.schools, self.clock())
            ensure_key(
                KeyStore(self.settings.keys_dir), self.settings.key_registry_file, "police:examplepolice", self.clock()
            )
            ensure_gate_key(self.settings, self.clock())
            # As `mash up`: clocks run.
            keeper = start_clock_keeper(self.settings, self.ledger, self.clock, REGISTRY.delivery_topic)
            self.web = await start_web(
                self.settings, self.ledger, self.clock, Signers(KeyStore(self.settings.keys_dir))
            )
            # As `mash up`: clocks and alert queuing follow the audited log.
            self.projector = Projector[Tx](
                self.ledger, (keeper.projection, alerts.AlertQueue(self.web.settings)), interval_s=0.05
            )
            await self.projector.start()
            self.ledger.on_append(self.projector.poke)
            self.sender = alerts.AlertSender(self.web.settings, self.ledger, self.clock)
            broker = build_broker("localhost:9092", embedded=True)
            self.services = build_services(self.settings, self.ledger, broker, self.clock)
            async with TestKafkaBroker(broker):
                self._stop = asyncio.Event()
                ready.set_result(None)
                await self._stop.wait()
            await self.web.stop()
            await self.projector.stop()
            await keeper.stop()
            await self.ledger.close()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def ingest(self, path: Path) -> None:
        """As `mash police ingest` does: parse, sign, publish each row until the gate's receipt is in."""
        rows, _rejected = read_export(path, now=self.clock(), tz=LONDON)
        rows = sign_rows(rows, KeyStore(self.settings.keys_dir))
        broker = self.services.broker

        async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
            await broker.publish(value, topic, key=key, headers={k: v.decode() for k, v in headers})

        await publish_rows(rows, ledger=self.ledger, send=send, timeout_s=5, attempts=1)
        await self.services.relay.drain()
        await self.projector.catch_up()  # the deliveries' alerts are queued, their clocks started

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.smtp.stop()


def export_with_script_row(tmp: Path) -> Path:
    """The demo's overnight export plus one row for school 900001 whose summary holds markup."""
    text = (DEMO / "overnight-export.csv").read_text()
    row = (
        "EXP/2026/1099,2026-11-22T20:10:00,2026-11-22T20:30:00,examplepolice,domestic_abuse,Esme,Fixture,"
        f'2015-02-02,yes,900001,ZZ99 9ZZ,"{SCRIPT_SUMMARY}"\n'
    )
    path = tmp / "export.csv"
    path.write_text(text if text.endswith("\n") else text + "\n")
    with path.open("a") as f:
        f.write(row)
    return path


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    """The demo directory and overnight export (plus a markup row) ingested at 07:00; four accounts."""
    tmp = tmp_path_factory.mktemp("web")
    stack = WebStack(tmp)
    stack.start()
    try:
        stack.call(stack.ingest(export_with_script_row(tmp)))
        for who, name in (("900001", "Alex Keyadult"), ("900002", "Jo Testperson"), ("mash", "Morgan Manager")):
            stack.call(set_password(stack.ledger, who, name, PASSWORD, stack.clock()))
        yield stack
    finally:
        stack.stop()


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None
