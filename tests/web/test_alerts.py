"""Alerts without content: queued by the alert projection for each delivery the audited log records
(whichever process recorded it), retried with backoff when the channel is down, sent once when it is
back; the webhook gets a link only."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

from mash_broker.app import alerts
from mash_broker.app.embedded import free_port
from mash_broker.core.projector import Projector
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger, Tx
from web.conftest import Clock, Sink

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
DELIVERY = "3226e965-2b13-57b2-9ef8-c1895ca6180f"
ADULTS = [("Alex Keyadult", "alex.keyadult@example.org"), ("Sam Deputy", "sam.deputy@example.org")]


async def open_ledger(tmp: Path, settings: Settings) -> Ledger:
    ledger = await Ledger.open(settings.ledger_url)
    async with ledger.transaction() as tx:
        await tx.replace_directory([("900001", "Example Primary", "999", ADULTS)], NOW)
    return ledger


async def alert_queue(ledger: Ledger, settings: Settings) -> Projector[Tx]:
    """The stack's alert projection, registered (it follows the log from here on)."""
    projector = Projector[Tx](ledger, (alerts.AlertQueue(settings),))
    await projector.register()
    return projector


async def deliver(ledger: Ledger, recipient: str = "school:900001", delivery_id: str = DELIVERY) -> None:
    async with ledger.transaction() as tx:
        await tx.event("delivery.received", None, NOW, delivery_id=delivery_id, recipient=recipient)


async def test_smtp_down_is_retried_with_backoff_then_sent_once(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port, web_base_url="https://mash.example")
    ledger = await open_ledger(tmp_path, settings)
    projector = await alert_queue(ledger, settings)
    clock = Clock(NOW)
    sender = alerts.AlertSender(settings, ledger, clock)
    try:
        await deliver(ledger)
        await deliver(ledger)  # the same event again queues nothing more
        await deliver(ledger, recipient="gp:A12345", delivery_id="5f1c2a9e-0000-4000-8000-000000000000")
        await projector.catch_up()
        assert await sender.send_due() == 0  # nothing listens on the port yet
        assert await sender.send_due() == 0  # backing off: not due again yet
        sink = Sink()
        smtp = Controller(sink, hostname="127.0.0.1", port=port)
        smtp.start()
        try:
            clock.now = NOW + timedelta(seconds=31)
            assert await sender.send_due() == 2
            assert await sender.send_due() == 0
        finally:
            smtp.stop()
        assert sorted(m["To"] for m in sink.messages) == [a[1] for a in ADULTS]
        for m in sink.messages:
            body = m.get_payload(decode=True).decode()  # type: ignore[union-attr]
            assert body.replace("\r\n", "\n").strip() == alerts.alert_text("https://mash.example/inbox").strip()
    finally:
        await ledger.close()


async def test_webhook_gets_only_a_link(tmp_path: Path) -> None:
    got: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = Settings(
        data_dir=tmp_path,
        alert_webhook=f"http://127.0.0.1:{server.server_port}/hook",
        web_base_url="https://mash.example",
    )
    ledger = await open_ledger(tmp_path, settings)
    projector = await alert_queue(ledger, settings)
    try:
        await deliver(ledger)
        await projector.catch_up()
        assert await alerts.AlertSender(settings, ledger, Clock(NOW)).send_due() == 1
    finally:
        await ledger.close()
        server.shutdown()
    [body] = got
    assert json.loads(body) == {
        "text": alerts.alert_text("https://mash.example/inbox"),
        "link": "https://mash.example/inbox",
    }


async def test_a_delivery_recorded_by_another_process_is_alerted_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=free_port())
    ledger = await open_ledger(tmp_path, settings)
    other = await Ledger.open(settings.ledger_url)  # another process's handle on the same file
    try:
        projector = await alert_queue(ledger, settings)
        await deliver(other)
        await projector.catch_up()
        restarted = await alert_queue(other, settings)  # a restarted stack: the cursor is in the ledger
        await restarted.catch_up()
        queued = await ledger.alerts_due(NOW)
        assert sorted(a.address for a in queued) == [a[1] for a in ADULTS], "each Key Adult, once"
        assert {a.delivery_id for a in queued} == {DELIVERY}
    finally:
        await other.close()
        await ledger.close()


async def test_alerts_switched_on_later_never_mail_about_earlier_deliveries(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=free_port())
    ledger = await open_ledger(tmp_path, settings)
    try:
        await deliver(ledger)  # before the alert projection ever ran
        projector = await alert_queue(ledger, settings)
        await deliver(ledger, delivery_id="5f1c2a9e-0000-4000-8000-000000000001")
        await projector.catch_up()
        assert {a.delivery_id for a in await ledger.alerts_due(NOW)} == {"5f1c2a9e-0000-4000-8000-000000000001"}
    finally:
        await ledger.close()


async def test_an_alert_for_a_copy_withdrawn_before_it_went_is_not_sent(tmp_path: Path) -> None:
    """SMTP was down when the notification arrived; police withdrew it before the alert went: no Key Adult is
    sent to an inbox where the notification is hidden."""
    port = free_port()
    settings = Settings(data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port)
    ledger = await open_ledger(tmp_path, settings)
    projector = await alert_queue(ledger, settings)
    clock = Clock(NOW)
    sender = alerts.AlertSender(settings, ledger, clock)
    kept = "5f1c2a9e-0000-4000-8000-000000000002"
    try:
        async with ledger.transaction() as tx:
            for delivery_id in (DELIVERY, kept):
                await tx.insert_delivery(
                    delivery_id=uuid.UUID(delivery_id),
                    message_id=uuid.uuid4(),
                    recipient="school:900001",
                    purpose="safeguarding",
                    notify_by=None,
                    created_at=NOW,
                    envelope="{}",
                )
        await deliver(ledger)
        await deliver(ledger, delivery_id=kept)
        await projector.catch_up()
        assert await sender.send_due() == 0  # SMTP down: both deliveries' alerts wait
        async with ledger.transaction() as tx:
            await tx.mark_withdrawn(uuid.UUID(DELIVERY), NOW + timedelta(seconds=5))
        sink = Sink()
        smtp = Controller(sink, hostname="127.0.0.1", port=port)
        smtp.start()
        try:
            clock.now = NOW + timedelta(seconds=31)
            assert await sender.send_due() == len(ADULTS), "the kept copy's alerts only"
        finally:
            smtp.stop()
        assert {a.delivery_id for a in await ledger.alerts_due(clock.now + timedelta(hours=2))} == set()
    finally:
        await ledger.close()
