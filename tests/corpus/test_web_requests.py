"""Bad web requests to the Key Adult pages (the Starlette app in-process, over httpx's ASGI transport, on the
real app's ledger): each is refused with a page that names what was wrong (the sign-in form's login field,
the form that expired, the page not found) without echoing a value into the log; a refusal to open another
school's notification is put on the audited log for a person; and the same Key Adult's valid requests
around the bad one still work.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from io import StringIO
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mash_broker.app.web.accounts import set_password
from mash_broker.app.web.app import LOGIN_CSRF_COOKIE, SESSION_COOKIE, create_app
from mash_broker.core.settings import Settings

from .conftest import FAMILY, GIVEN, NOW, Flow, assert_unquoted, notification_doc

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "correct horse battery staple"  # noqa: S105  # a synthetic test password
LOGIN = "alex.keyadult@example.org"  # the demo's Key Adult of 900001


@dataclass
class Site:
    """The pages over the flow's ledger; a signed-in Key Adult of 900001; one delivery for each of two schools."""

    app: Any
    flow: Flow
    own: str  # a delivery id of 900001
    other: str  # a delivery id of 900002

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://mash.test")

    @asynccontextmanager
    async def signed_in(self) -> AsyncIterator[httpx.AsyncClient]:
        async with self.client() as client:
            form = await client.get("/login")
            csrf = form.cookies[LOGIN_CSRF_COOKIE]
            answer = await client.post("/login", data={"login": LOGIN, "password": PASSWORD, "csrf": csrf})
            assert answer.status_code == 303, answer.text[-500:]
            yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(flow: Flow) -> AsyncIterator[Site]:
    ids = {}
    for urn in ("900001", "900002"):
        doc = notification_doc(urn=urn)
        await flow.send(flow.signed(doc), "police.notification.v1")
        [delivery] = [d for d in await flow.ledger.deliveries_for(f"school:{urn}") if d.message_id == doc["message_id"]]
        ids[urn] = delivery.delivery_id
    await set_password(flow.ledger, "900001", "Alex Keyadult", PASSWORD, NOW)
    app = create_app(Settings(data_dir=flow.data_dir), flow.ledger, clock=lambda: NOW, sign=None)
    yield Site(app, flow, ids["900001"], ids["900002"])


async def inbox_still_works(client: httpx.AsyncClient, site: Site) -> None:
    """The valid neighbour: the same Key Adult's inbox and own notification."""
    inbox = await client.get("/inbox")
    assert inbox.status_code == 200
    assert site.own in inbox.text
    assert (await client.get(f"/inbox/{site.own}")).status_code == 200


async def form_token(client: httpx.AsyncClient) -> str:
    return (
        client.cookies[LOGIN_CSRF_COOKIE]
        if LOGIN_CSRF_COOKIE in client.cookies
        else ((await client.get("/login")).cookies[LOGIN_CSRF_COOKIE])
    )


# case id -> (the form fields, whether the login CSRF cookie's token is sent, the status, the answer names the field)
SIGN_INS: dict[str, tuple[Callable[[str], dict[str, str]], int, bool]] = {
    "no-csrf": (lambda t: {"login": LOGIN, "password": PASSWORD}, 403, False),
    "wrong-csrf": (lambda t: {"login": LOGIN, "password": PASSWORD, "csrf": GIVEN}, 403, False),
    "wrong-password": (lambda t: {"login": LOGIN, "password": f"{GIVEN} {FAMILY}", "csrf": t}, 401, True),
    "unknown-login": (lambda t: {"login": f"{GIVEN}.{FAMILY}@example.org", "password": PASSWORD, "csrf": t}, 401, True),
    "blank-login": (lambda t: {"login": "", "password": PASSWORD, "csrf": t}, 401, True),
    "no-password": (lambda t: {"login": LOGIN, "csrf": t}, 401, True),
    "login-of-100000-characters": (lambda t: {"login": GIVEN * 11_112, "password": PASSWORD, "csrf": t}, 401, True),
    "password-of-1-mb": (lambda t: {"login": LOGIN, "password": FAMILY * 100_000, "csrf": t}, 401, True),
    "login-with-nul-and-markup": (
        lambda t: {"login": f"{GIVEN}\x00<script>", "password": PASSWORD, "csrf": t},
        401,
        True,
    ),
}


@pytest.mark.parametrize("case", list(SIGN_INS))
async def test_a_bad_sign_in_is_refused_naming_the_field_and_the_real_key_adult_still_signs_in(
    site: Site, logs: StringIO, case: str
) -> None:
    fields, status, names_login = SIGN_INS[case]
    async with site.client() as attacker:
        token = await form_token(attacker)
        answer = await attacker.post("/login", data=fields(token))
    assert answer.status_code == status
    assert "There is a problem" in answer.text or "expired" in answer.text
    if names_login:  # the error summary links to the login field, which is marked
        assert 'href="#login"' in answer.text
        assert 'aria-invalid="true"' in answer.text
    assert SESSION_COOKIE not in answer.cookies
    async with site.signed_in() as key_adult:  # one bad attempt never locks the account out
        await inbox_still_works(key_adult, site)
    assert_unquoted(logs.getvalue())


@pytest.mark.parametrize(
    "body", [b"login=%FF%FE&password=x&csrf=y", b"\xff\xfe\x00garbage", b"login=" + b"a" * 2_000_000]
)
async def test_a_sign_in_body_that_is_not_a_form_is_answered_not_crashed(
    site: Site, logs: StringIO, body: bytes
) -> None:
    async with site.client() as attacker:
        await form_token(attacker)
        answer = await attacker.post(
            "/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert answer.status_code in (400, 401, 403, 413)
    async with site.signed_in() as key_adult:
        await inbox_still_works(key_adult, site)


PAGES: dict[str, tuple[str, Callable[[Site], str], int, bool | str]] = {
    # case -> (method, path, the status, whether the refusal is on the audited log: a delivery, or a page by name)
    "another-schools-notification": ("GET", lambda s: f"/inbox/{s.other}", 404, True),
    "another-schools-notification-upper-case": ("GET", lambda s: f"/inbox/{s.other.upper()}", 404, True),
    "mark-another-schools-notification-read": ("POST", lambda s: f"/inbox/{s.other}/read", 404, True),
    "a-delivery-id-that-names-nothing": ("GET", lambda s: f"/inbox/{uuid.uuid4()}", 404, False),
    "a-delivery-id-that-is-a-name": ("GET", lambda s: f"/inbox/{GIVEN}%20{FAMILY}", 404, False),
    "a-delivery-id-of-10000-characters": ("GET", lambda s: f"/inbox/{GIVEN * 1200}", 404, False),
    "the-board-as-a-key-adult": ("GET", lambda s: "/board", 404, "/board"),
    "a-path-that-climbs-out": ("GET", lambda s: "/static/../../etc/passwd", 404, False),
    "an-unknown-page-named-after-a-child": ("GET", lambda s: f"/{GIVEN}/{FAMILY}", 404, False),
}


async def refusals(site: Site) -> list[dict[str, Any]]:
    with sqlite3.connect(site.flow.data_dir / "ledger.sqlite3") as conn:
        return [
            json.loads(d) for (d,) in conn.execute("SELECT detail FROM events WHERE event_type = 'web.access_refused'")
        ]


@pytest.mark.parametrize("case", list(PAGES))
async def test_a_page_a_key_adult_may_not_see_is_not_found_and_their_own_still_open(
    site: Site, logs: StringIO, case: str
) -> None:
    method, path, status, audited = PAGES[case]
    before = len(await refusals(site))
    async with site.signed_in() as key_adult:
        if method == "POST":
            page = await key_adult.get(f"/inbox/{site.own}")
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            answer = await key_adult.post(path(site), data={"csrf": csrf})
        else:
            answer = await key_adult.get(path(site))
        assert answer.status_code == status
        assert site.other not in answer.text  # nothing of the other school's notification
        await inbox_still_works(key_adult, site)
    after = await refusals(site)
    if audited:  # listed for a person: who asked, from which school, which delivery or page
        [event] = after[before:]
        asked = event["delivery_id"] if audited is True else event["page"]
        assert (asked, event["asked_by_org"]) == (site.other if audited is True else audited, "school:900001")
    else:
        assert len(after) == before
    assert_unquoted(logs.getvalue())


@pytest.mark.parametrize("cookie", [GIVEN, "", "a" * 5000, "%00%FF", f"{GIVEN};{FAMILY}"])
async def test_a_session_cookie_that_is_not_a_session_is_sent_to_sign_in(
    site: Site, logs: StringIO, cookie: str
) -> None:
    async with site.client() as stranger:
        stranger.cookies.set(SESSION_COOKIE, cookie)
        answer = await stranger.get("/inbox")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert_unquoted(logs.getvalue())


async def test_a_form_posted_without_its_session_token_changes_nothing(site: Site, logs: StringIO) -> None:
    async with site.signed_in() as key_adult:
        answer = await key_adult.post(f"/inbox/{site.own}/read", data={"csrf": GIVEN})
        assert answer.status_code == 403
        assert "expired" in answer.text
        [row] = [d for d in await site.flow.ledger.deliveries_for("school:900001") if d.delivery_id == site.own]
        assert row.read_at is None
        await inbox_still_works(key_adult, site)
    assert_unquoted(logs.getvalue())
