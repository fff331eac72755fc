"""The web pages over real HTTP (no browser): sign-in, sessions, CSRF, headers, 404s, and alerts."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest

from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import publish_rows, sign_rows
from mash_broker.agencies.police.versions import withdrawal_of
from mash_broker.app.web.accounts import set_password
from mash_broker.contracts import Envelope, NotFound
from mash_broker.core.audit.keys import KeyStore
from web.conftest import PASSWORD, SCRIPT_SUMMARY, WebStack

PERSONAL = ("Ava", "Lily", "Test", "Example", "2016-05-12", "2017-01-20", "Esme", "Fixture", "EXP/2026", "ZZ99")


def client(stack: WebStack) -> httpx.Client:
    return httpx.Client(base_url=stack.web.url, follow_redirects=False, timeout=10)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(stack: WebStack, login: str) -> httpx.Client:
    c = client(stack)
    page = c.get("/login")
    r = c.post("/login", data={"login": login, "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    return c


def delivery_ids(stack: WebStack, urn: str) -> list[str]:
    return [d.delivery_id for d in stack.call(stack.ledger.deliveries_for(f"school:{urn}"))]


def test_pages_carry_strict_security_headers(web_stack: WebStack) -> None:
    r = client(web_stack).get("/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # no script at all: default-src 'none' covers it
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text


def test_signed_out_visitor_is_sent_to_sign_in(web_stack: WebStack) -> None:
    for path in ("/inbox", "/board", f"/inbox/{delivery_ids(web_stack, '900001')[0]}"):
        r = client(web_stack).get(path)
        assert (r.status_code, r.headers["location"]) == (303, "/login")


def test_wrong_password_and_missing_login_csrf_are_refused(web_stack: WebStack) -> None:
    c = client(web_stack)
    token = csrf_of(c.get("/login").text)
    assert (
        c.post("/login", data={"login": "alex.keyadult@example.org", "password": "wrong", "csrf": token}).status_code
        == 401
    )
    fresh = client(web_stack)  # no login CSRF cookie
    assert (
        fresh.post(
            "/login", data={"login": "alex.keyadult@example.org", "password": PASSWORD, "csrf": "forged"}
        ).status_code
        == 403
    )


def test_a_post_without_the_session_csrf_token_changes_nothing(web_stack: WebStack) -> None:
    c = sign_in(web_stack, "alex.keyadult@example.org")
    target = delivery_ids(web_stack, "900001")[-1]
    r = c.post(f"/inbox/{target}/read", data={"csrf": "forged"})
    assert r.status_code == 403
    row = web_stack.call(web_stack.ledger.delivery(target))
    assert row is not None
    assert row.read_at is None


def test_another_schools_notification_is_404_and_logged_without_personal_data(
    web_stack: WebStack,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = delivery_ids(web_stack, "900002")[0]
    c = sign_in(web_stack, "alex.keyadult@example.org")
    page = c.get("/inbox")
    assert c.get(f"/inbox/{other}").status_code == 404
    assert c.post(f"/inbox/{other}/read", data={"csrf": csrf_of(page.text)}).status_code == 404
    assert c.get("/board").status_code == 404  # a Key Adult is not a MASH manager
    row = web_stack.call(web_stack.ledger.delivery(other))
    assert row is not None
    assert row.read_at is None
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "web.not_found" in logged
    assert not any(p in logged for p in PERSONAL)
    # and on the audited log: who asked, from which school, for which delivery; an id that names
    # nothing is only logged, so guessing cannot fill the ledger
    assert c.get(f"/inbox/{uuid.uuid4()}").status_code == 404
    refused = [
        e for e in web_stack.call(web_stack.ledger.events("web.access_refused")) if e.detail["delivery_id"] == other
    ]
    assert [
        (e.detail["action"], e.detail["asked_by"], e.detail["asked_by_org"], e.detail["recipient"]) for e in refused
    ] == [
        ("open", "Alex Keyadult", "school:900001", "school:900002"),
        ("mark_read", "Alex Keyadult", "school:900001", "school:900002"),
    ]
    assert all(e.message_id == row.message_id for e in refused)
    board = sign_in(web_stack, "morgan manager").get("/board").text
    shown = board.split('<table id="refused"', 1)[1].split("</table>", 1)[0]
    assert shown.count(other[:8]) == 2
    assert "school:900001" in shown


def test_a_session_ends_after_30_idle_minutes(web_stack: WebStack) -> None:
    c = sign_in(web_stack, "jo.testperson@example.org")
    assert c.get("/inbox").status_code == 200
    start = web_stack.clock.now
    try:
        web_stack.clock.now = start + timedelta(minutes=29)
        assert c.get("/inbox").status_code == 200  # activity keeps it alive
        web_stack.clock.now = start + timedelta(minutes=60)
        assert c.get("/inbox").status_code == 303  # 31 idle minutes
    finally:
        web_stack.clock.now = start


def test_sign_out_ends_the_session(web_stack: WebStack) -> None:
    c = sign_in(web_stack, "jo.testperson@example.org")
    token = csrf_of(c.get("/inbox").text)
    cookie = c.cookies.get("mash_session")
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    replay = client(web_stack)
    replay.cookies.set("mash_session", str(cookie))
    assert replay.get("/inbox").status_code == 303


def test_passwords_are_argon2_and_only_for_people_in_the_directory(web_stack: WebStack) -> None:
    import sqlite3

    con = sqlite3.connect(web_stack.settings.data_dir / "ledger.sqlite3")
    hashes = [h for (h,) in con.execute("select password_hash from web_accounts")]
    con.close()
    assert hashes
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(PASSWORD in h for h in hashes)
    with pytest.raises(NotFound):
        web_stack.call(set_password(web_stack.ledger, "900001", "Jo Testperson", PASSWORD, web_stack.clock()))


def test_summary_markup_is_escaped_in_the_html(web_stack: WebStack) -> None:
    rows = web_stack.call(web_stack.ledger.deliveries_for("school:900001"))
    target = next(r.delivery_id for r in rows if "1099" in r.envelope)
    c = sign_in(web_stack, "alex.keyadult@example.org")
    page = c.get(f"/inbox/{target}")
    c.post(f"/inbox/{target}/read", data={"csrf": csrf_of(page.text)})
    html = c.get(f"/inbox/{target}").text
    assert "<script>document.title" not in html
    assert "&lt;script&gt;" in html
    assert SCRIPT_SUMMARY.split("<")[0] in html


def test_each_key_adult_gets_a_content_free_alert_per_notification(web_stack: WebStack) -> None:
    sent = web_stack.call(web_stack.sender.send_due())
    expected = sum(
        len(delivery_ids(web_stack, urn)) * len(web_stack.call(web_stack.ledger.key_adults(urn)))
        for urn in web_stack.call(web_stack.ledger.known_school_urns())
    )
    assert sent == expected > 0
    assert web_stack.call(web_stack.sender.send_due()) == 0  # sent once
    mails = web_stack.sink.messages
    assert {m["To"] for m in mails} >= {
        "alex.keyadult@example.org",
        "sam.deputy@example.org",
        "jo.testperson@example.org",
    }
    for m in mails:
        body = m.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert f"{web_stack.web.url}/inbox" in body
        everything = body + str(m["Subject"])
        assert not any(p in everything for p in PERSONAL), everything
        assert "Officer" not in everything


def test_five_wrong_passwords_lock_the_login_for_a_while(web_stack: WebStack) -> None:
    web_stack.call(set_password(web_stack.ledger, "900001", "Sam Deputy", PASSWORD, web_stack.clock()))
    c = client(web_stack)
    for _ in range(5):
        token = csrf_of(c.get("/login").text)
        assert (
            c.post("/login", data={"login": "sam.deputy@example.org", "password": "guess", "csrf": token}).status_code
            == 401
        )
    token = csrf_of(c.get("/login").text)
    assert (
        c.post("/login", data={"login": "sam.deputy@example.org", "password": PASSWORD, "csrf": token}).status_code
        == 401
    )
    start = web_stack.clock.now
    try:
        web_stack.clock.now = start + timedelta(minutes=16)
        token = csrf_of(c.get("/login").text)
        assert (
            c.post("/login", data={"login": "sam.deputy@example.org", "password": PASSWORD, "csrf": token}).status_code
            == 303
        )
    finally:
        web_stack.clock.now = start


def test_a_key_adult_taken_off_the_directory_is_signed_out_at_once(web_stack: WebStack) -> None:
    c = sign_in(web_stack, "jo.testperson@example.org")
    assert c.get("/inbox").status_code == 200
    ledger = web_stack.ledger
    before = web_stack.call(ledger.key_adults("900002"))

    async def directory(adults: list[tuple[str, str]]) -> None:
        async with ledger.transaction() as tx:
            await tx.replace_directory([("900002", "Sample Academy", "999", adults)], web_stack.clock())

    web_stack.call(directory([("Chris Placeholder", "chris.placeholder@example.org")]))
    try:
        assert c.get("/inbox").status_code == 303
        fresh = client(web_stack)
        token = csrf_of(fresh.get("/login").text)
        assert (
            fresh.post(
                "/login", data={"login": "jo.testperson@example.org", "password": PASSWORD, "csrf": token}
            ).status_code
            == 401
        )
    finally:
        web_stack.call(directory([(a.name, a.email) for a in before]))


def test_board_lists_running_clocks_that_are_warned_or_past_their_deadline(web_stack: WebStack) -> None:
    now = web_stack.clock()
    ids = {k: uuid.uuid5(uuid.NAMESPACE_URL, f"board-clock-{k}") for k in ("over", "warned", "quiet", "stopped")}
    subject = {k: str(uuid.uuid5(uuid.NAMESPACE_DNS, k)) for k in ids}

    async def place() -> None:
        async with web_stack.ledger.transaction() as tx:
            for k, due, warn in (
                ("over", now - timedelta(hours=2), now - timedelta(hours=3)),
                ("warned", now + timedelta(hours=1), now - timedelta(minutes=5)),
                ("quiet", now + timedelta(days=3), now + timedelta(days=2)),
                ("stopped", now - timedelta(hours=5), now - timedelta(hours=6)),
            ):
                await tx.start_clock(
                    clock_id=ids[k],
                    name="s47_gp_report",
                    subject_id=subject[k],
                    started_at=now - timedelta(days=1),
                    due_at=due,
                    warn_at=warn,
                    escalate_to="health:named-gp-safeguarding",
                )
            await tx.stop_clock(ids["stopped"], now - timedelta(hours=4))

    web_stack.call(place())
    html = sign_in(web_stack, "morgan manager").get("/board").text
    table = html.split('<table id="clocks"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-id="([^"]+)"[^>]*>(.*?)</tr>', table, re.S)
    ours = [(rid, text) for rid, text in rows if rid in {str(v) for v in ids.values()}]
    assert [rid for rid, _ in ours] == [str(ids["over"]), str(ids["warned"])]  # past the deadline first
    assert "over by 2 h 00 min" in ours[0][1]
    assert "1 h 00 min left" in ours[1][1]
    assert "s47 gp report" in ours[0][1]
    assert subject["over"][:8] in ours[0][1]
    assert "health:named-gp-safeguarding" in ours[0][1]
    over = int(re.search(r'id="n-clocks">(\d+)<', html).group(1))  # type: ignore[union-attr]
    assert over == sum(1 for _, text in rows if "over by" in text)


def test_a_withdrawn_notification_shows_as_withdrawn_without_its_content(web_stack: WebStack) -> None:
    """Police withdraw a notification the school has read: its inbox row and its page say withdrawn by police
    and when, and neither shows what police had shared. (Last in this module: it changes the inbox.)"""
    rows = web_stack.call(web_stack.ledger.deliveries_for("school:900001"))
    target = next(r for r in rows if "EXP/2026/1001" in r.envelope)
    c = sign_in(web_stack, "alex.keyadult@example.org")
    page = c.get(f"/inbox/{target.delivery_id}")
    c.post(f"/inbox/{target.delivery_id}/read", data={"csrf": csrf_of(page.text)})
    assert "Ava" in c.get(f"/inbox/{target.delivery_id}").text, "read: its content shows"
    (head,) = web_stack.call(web_stack.ledger.incident_notifications("EXP/2026/1001"))

    web_stack.call(send_as_police(web_stack, withdrawal_of(head, now=web_stack.clock())))

    inbox = c.get("/inbox").text
    row = inbox.split(f'data-id="{target.delivery_id}"', 1)[1].split("</tr>", 1)[0]
    assert "withdrawn" in row.lower()
    assert "by police at" in row
    for shown in ("EXP/2026/1001", "Open", "View"):
        assert shown not in row, shown
    page = c.get(f"/inbox/{target.delivery_id}").text
    assert "Withdrawn by police at" in page
    for value in ("Ava", "2016-05-12", "Officers attended", "EXP/2026/1001"):
        assert value not in page, value
    assert 'action="/inbox/' not in page, "nothing left to open"


async def send_as_police(stack: WebStack, env: Envelope) -> None:
    """As `mash police withdraw` does: sign, publish, wait for the gate's receipt, relay the outbox."""
    broker = stack.services.broker

    async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await broker.publish(value, topic, key=key, headers={k: v.decode() for k, v in headers})

    rows = sign_rows([ParsedRow(1, env)], KeyStore(stack.settings.keys_dir))
    (receipt,) = await publish_rows(rows, ledger=stack.ledger, send=send, timeout_s=5, attempts=1)
    assert receipt.status == "withdrawn", receipt
    await stack.services.relay.drain()
