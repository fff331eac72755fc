"""`mash up` serves the web pages and sends content-free alerts, over real sockets: the embedded broker,
the real `mash` commands, a local SMTP sink (aiosmtpd) and plain HTTP to the printed address."""

from __future__ import annotations

import re
import subprocess
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from mash_broker.app.embedded import free_port

from .helpers import DEMO, ROOT, mash_executable, mash_session, wait_for

pytestmark = pytest.mark.embedded

PERSONAL = ("Ava", "Lily", "2016-05-12", "EXP/2026", "ZZ99", "Officers")


class Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def test_mash_up_serves_the_pages_and_alerts_key_adults_with_a_link_only(tmp_path: Path) -> None:
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with mash_session(
            tmp_path, MASH_SMTP_HOST="127.0.0.1", MASH_SMTP_PORT=str(smtp.port), MASH_ALERT_INTERVAL_S="0.2"
        ) as mash:
            up = mash.start("up", ready="Key Adult inbox and MASH board at")
            found = re.search(r"MASH board at (http://127\.0\.0\.1:\d+)/", up.stderr())
            assert found, up.stderr()
            url = found.group(1)
            login = httpx.get(f"{url}/login", timeout=10)
            assert login.status_code == 200
            assert "frame-ancestors 'none'" in login.headers["content-security-policy"]

            assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
            setpw = subprocess.run(
                [mash_executable(), "web", "set-password", "900001", "Alex Keyadult"],
                input=b"a synthetic passphrase\n",
                env=mash.env(),
                cwd=ROOT,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert setpw.returncode == 0, setpw.stderr
            assert b"a synthetic passphrase" not in setpw.stdout + setpw.stderr
            mash.run("police", "ingest", str(DEMO / "overnight-export.csv"), "--json")
            wanted = mash.scalar(
                "SELECT count(*) FROM deliveries d JOIN key_adults k ON d.recipient = 'school:' || k.urn"
            )
            assert wanted > 0
            wait_for("an alert to each Key Adult per notification", lambda: len(sink.messages) >= wanted, 30)
            # The sender marks an alert sent after the SMTP server took it: wait for the mark, do not race it.
            unsent = "SELECT count(*) FROM alerts WHERE sent_at IS NULL"
            wait_for("every alert marked sent", lambda: mash.scalar(unsent) == 0, 30)
            for m in sink.messages:
                text = m.get_payload(decode=True).decode() + str(m["Subject"])  # type: ignore[union-attr]
                assert f"{url}/inbox" in text
                assert not any(p in text for p in PERSONAL), text
    finally:
        smtp.stop()
