"""Alerts without content: when a notification reaches a school's inbox, each of its Key Adults is
told by email (MASH_SMTP_HOST) and/or a webhook is called (MASH_ALERT_WEBHOOK), carrying only a
link to the inbox: never a name, date of birth, reference or summary.

Durable and never in the gate's way: a projection of the audited log (``AlertQueue``, run by the
stack's projector) queues the alerts (``alerts`` table) for each ``delivery.received``, whichever
process recorded it, and a sender task sends them afterwards, retrying with backoff; a failure is
recorded on the row, never raised into the gate or the inbox. An alert is sent at least once (a crash
between sending and marking resends).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import smtplib
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from mash_broker.core.logging import get_logger
from mash_broker.core.records import EventRecord
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger, Tx

log = get_logger("mash.alerts")

ALERT_NS = uuid.UUID("6f1d3c52-31a4-4d5e-9a57-0f4e1f7a0c11")
MAX_BACKOFF = timedelta(hours=1)
SUBJECT = "MASH Broker: a new notification is waiting in your school's inbox"


def alert_text(inbox_url: str) -> str:
    """The whole of an alert: no personal data, only where to sign in."""
    return (
        "A new Operation Encompass notification is waiting for your school.\n\n"
        f"Sign in to read it: {inbox_url}\n\n"
        "This message carries no details on purpose. Do not reply.\n"
    )


def enabled(settings: Settings) -> bool:
    return bool(settings.smtp_host or settings.alert_webhook)


class AlertQueue:
    """The alert projection: on ``delivery.received`` for a school, queue its alerts in the transaction
    that moves the projection past that event (channels off: nothing is queued, the cursor still moves)."""

    name = "alerts"
    writes: frozenset[str] = frozenset()  # it appends no events
    replays_history = False  # alerts are about now: enabling them never mails about last year's deliveries

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def apply(self, tx: Tx, event: EventRecord) -> None:
        recipient = str(event.detail.get("recipient", ""))
        if event.event_type != "delivery.received" or not recipient.startswith("school:"):
            return
        delivery_id = str(event.detail["delivery_id"])
        targets: list[tuple[str, str]] = []
        if self.settings.smtp_host:
            targets += [("email", e) for e in await tx.key_adult_emails(recipient.split(":", 1)[1])]
        if self.settings.alert_webhook:
            targets.append(("webhook", self.settings.alert_webhook))
        for channel, address in targets:
            alert_id = str(uuid.uuid5(ALERT_NS, f"{delivery_id}|{channel}|{address.casefold()}"))
            await tx.queue_alert(
                alert_id=alert_id, delivery_id=delivery_id, channel=channel, address=address, at=event.at
            )


@dataclass
class AlertSender:
    """Sends queued alerts every ``settings.alert_interval_s``; retries failures with backoff."""

    settings: Settings
    ledger: Ledger
    clock: Callable[[], datetime]
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except Exception:  # the ledger failed; try again next tick, never stop alerting
                log.exception("alert.tick_failed")
            await asyncio.sleep(self.settings.alert_interval_s)

    async def send_due(self) -> int:
        """Send every alert that is due now; returns how many went out."""
        sent = 0
        for alert in await self.ledger.alerts_due(self.clock()):
            try:
                await asyncio.to_thread(self._send, alert.channel, alert.address)
            except Exception as exc:  # any transport failure: record, back off, retry later
                attempts = alert.attempts + 1
                wait = min(timedelta(seconds=30 * 2 ** (attempts - 1)), MAX_BACKOFF)
                await self.ledger.alert_failed(
                    alert.alert_id, attempts=attempts, retry_at=self.clock() + wait, error=type(exc).__name__
                )
                log.warning(
                    "alert.failed",
                    channel=alert.channel,
                    delivery_id=alert.delivery_id,
                    attempts=attempts,
                    error=type(exc).__name__,
                )
                continue
            await self.ledger.alert_sent(alert.alert_id, attempts=alert.attempts + 1, at=self.clock())
            log.info("alert.sent", channel=alert.channel, delivery_id=alert.delivery_id)
            sent += 1
        return sent

    def _send(self, channel: str, address: str) -> None:
        link = f"{self.settings.web_url}/inbox"
        if channel == "email":
            msg = EmailMessage()
            msg["Subject"] = SUBJECT
            msg["From"] = self.settings.smtp_from
            msg["To"] = address
            msg.set_content(alert_text(link))
            with smtplib.SMTP(str(self.settings.smtp_host), self.settings.smtp_port, timeout=10) as smtp:
                if self.settings.smtp_starttls:
                    smtp.starttls()
                smtp.send_message(msg)
        else:
            if not address.startswith(("https://", "http://")):
                raise ValueError("MASH_ALERT_WEBHOOK must be an http(s) URL")
            body = json.dumps({"text": alert_text(link), "link": link}).encode()
            req = urllib.request.Request(  # noqa: S310  # the operator's URL, checked http(s) above
                address,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  # the operator's URL
                if resp.status >= 300:
                    raise OSError(f"webhook answered {resp.status}")
