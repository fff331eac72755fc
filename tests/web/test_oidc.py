"""Sign-in through an OIDC provider over real HTTP: the fake provider of ``web.oidc_provider`` on a
loopback port, and a second copy of the web pages configured to use it, over the module's ledger."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from mash_broker.core.settings import Settings
from web.conftest import PASSWORD, WebStack
from web.oidc_provider import ALEX, SAM, OidcSite, Provider, oidc_site
from web.test_pages import csrf_of


@pytest.fixture(scope="module")
def site(web_stack: WebStack) -> Iterator[OidcSite]:
    with oidc_site(web_stack) as s:
        yield s


@pytest.fixture
def provider(site: OidcSite) -> Iterator[Provider]:
    site.provider.reset()
    yield site.provider
    site.provider.reset()


@dataclass
class Trip:
    """One sign-in through the provider: the browser's client, the callback URL it was sent back to, the
    state cookie it held, and the pages' answer to the callback."""

    client: httpx.Client
    callback: str
    state_cookie: str
    answer: httpx.Response


def through_provider(site: OidcSite, *, tamper_state: bool = False, then: Callable[[], None] | None = None) -> Trip:
    """Click "Sign in with your organisation" and let the provider send the browser back (``then`` runs
    just before the browser reaches the callback)."""
    c = httpx.Client(base_url=site.web.url, follow_redirects=False, timeout=10)
    start = c.get("/login/oidc")
    assert start.status_code == 303, start.text
    assert start.headers["location"].startswith(site.provider.issuer + "/authorize?")
    state_cookie = start.cookies["mash_oidc_state"]
    back = httpx.get(start.headers["location"], follow_redirects=False, timeout=10)
    assert back.status_code == 302
    callback = back.headers["location"]
    assert callback.startswith(site.web.url + "/login/oidc/callback?")
    if tamper_state:
        q = parse_qs(urlsplit(callback).query)
        callback = f"{site.web.url}/login/oidc/callback?{urlencode({'code': q['code'][0], 'state': 'forged'})}"
    if then is not None:
        then()
    return Trip(c, callback, state_cookie, c.get(callback))


def test_sign_in_page_offers_the_provider_only_when_configured(web_stack: WebStack, site: OidcSite) -> None:
    assert "Sign in with your organisation" in httpx.get(site.web.url + "/login").text
    plain = httpx.get(web_stack.web.url + "/login")
    assert "Sign in with your organisation" not in plain.text
    assert httpx.get(web_stack.web.url + "/login/oidc").status_code == 404


def test_a_key_adult_signs_in_through_the_provider_and_sees_their_inbox(site: OidcSite, provider: Provider) -> None:
    for email in (ALEX, SAM.upper()):  # one with a password as well, one known only to the directory
        provider.email = email
        trip = through_provider(site)
        assert trip.answer.status_code == 200, trip.answer.text
        assert 'http-equiv="refresh" content="0; url=/inbox"' in trip.answer.text
        inbox = trip.client.get("/inbox")
        assert inbox.status_code == 200
        assert "900001" in inbox.text


def test_a_provider_with_standard_default_settings_gives_the_email_in_userinfo(
    site: OidcSite, provider: Provider
) -> None:
    provider.claims_in = "userinfo"  # the ID token names only the subject
    for email in (ALEX, SAM):
        provider.email = email
        trip = through_provider(site)
        assert trip.answer.status_code == 200, trip.answer.text
        assert trip.client.get("/inbox").status_code == 200
    assert provider.userinfo_calls == 2


def test_an_email_in_the_id_token_needs_no_userinfo_call(site: OidcSite, provider: Provider) -> None:
    assert through_provider(site).answer.status_code == 200
    assert provider.userinfo_calls == 0


def test_passwords_still_work_alongside_the_provider(site: OidcSite) -> None:
    c = httpx.Client(base_url=site.web.url, follow_redirects=False, timeout=10)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"login": ALEX, "password": PASSWORD, "csrf": token})
    assert (r.status_code, r.headers["location"]) == (303, "/inbox")


REASONS = {
    "audience": "id_token_wrong_audience",
    "signature": "id_token_bad_signature",
    "nonce": "id_token_wrong_nonce",
    "unverified": "email_missing_or_unverified",
    "unknown": "no_account_for_email",
    "state": "state_mismatch",
    "refused": "provider_error",
    "userinfo_unverified": "email_missing_or_unverified",
    "userinfo_other_subject": "userinfo_sub_mismatch",
}


@pytest.mark.parametrize("change", list(REASONS))
def test_a_bad_answer_from_the_provider_signs_nobody_in(
    site: OidcSite,
    provider: Provider,
    change: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if change == "audience":
        provider.audience = "someone-else"
    elif change == "signature":
        provider.sign_with = rsa.generate_private_key(65537, 2048)
    elif change == "nonce":
        provider.nonce = "not-the-nonce-we-sent"
    elif change == "unverified":
        provider.email_verified = False
    elif change == "unknown":
        provider.email = "stranger@example.org"
    elif change == "refused":
        provider.refuse = "access_denied"
    elif change == "userinfo_unverified":
        provider.claims_in, provider.email_verified = "userinfo", False
    elif change == "userinfo_other_subject":
        provider.claims_in, provider.userinfo_sub = "userinfo", "person-2"
    trip = through_provider(site, tamper_state=change == "state")
    assert trip.answer.status_code == 401
    assert "did not identify a person" in trip.answer.text
    assert trip.client.get("/inbox").headers["location"] == "/login"
    text = refused_for(capsys, caplog)
    assert "web.sign_in_refused" in text
    assert f"reason={REASONS[change]}" in text
    assert "stranger" not in text
    assert "alex" not in text.lower()


def refused_for(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What was logged since the last read; a reason shows as ``reason=...`` whichever renderer an
    earlier test left configured (console or JSON)."""
    logged = capsys.readouterr()
    text = logged.out + logged.err + caplog.text
    return re.sub(r'"reason": "([^"]*)"', r"reason=\1", text)


def test_a_callback_works_once(
    site: OidcSite,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trip = through_provider(site)
    assert trip.answer.status_code == 200
    capsys.readouterr()
    # The same answer again, with the state cookie it was bound to: the state was spent on first use.
    again = httpx.Client(
        base_url=site.web.url, follow_redirects=False, timeout=10, cookies={"mash_oidc_state": trip.state_cookie}
    )
    r = again.get(trip.callback)
    assert r.status_code == 401
    assert "reason=state_unknown_or_expired" in refused_for(capsys, caplog)
    assert again.get("/inbox").headers["location"] == "/login"


def test_a_sign_in_left_for_ten_minutes_is_refused(
    web_stack: WebStack,
    site: OidcSite,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = web_stack.clock.now

    def wander_off() -> None:
        web_stack.clock.now += timedelta(minutes=10)

    try:
        trip = through_provider(site, then=wander_off)
    finally:
        web_stack.clock.now = before
    assert trip.answer.status_code == 401
    assert "reason=state_unknown_or_expired" in refused_for(capsys, caplog)


def test_an_email_the_directory_lists_at_two_schools_signs_nobody_in(
    web_stack: WebStack,
    site: OidcSite,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Which school's notifications would they see? Neither: a person with a web account (set-password,
    one school) is the way to say."""
    ledger = web_stack.ledger
    before = web_stack.call(ledger.key_adults("900002"))

    async def directory(adults: list[tuple[str, str]]) -> None:
        async with ledger.transaction() as tx:
            await tx.replace_directory([("900002", "Sample Academy", "999", adults)], web_stack.clock())

    web_stack.call(directory([*((a.name, a.email) for a in before), ("Sam Deputy", SAM)]))
    try:
        provider.email = SAM
        trip = through_provider(site)
        assert trip.answer.status_code == 401
        assert "reason=no_account_for_email" in refused_for(capsys, caplog)
    finally:
        web_stack.call(directory([(a.name, a.email) for a in before]))
    trip = through_provider(site)  # and once the directory is put back, Sam signs in again
    assert trip.answer.status_code == 200


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MASH_OIDC_ISSUER": "https://login.example.org"}, "oidc_client_id"),
        ({"MASH_OIDC_CLIENT_ID": "mash"}, "oidc_client_id"),
        ({"MASH_OIDC_ISSUER": "http://login.example.org", "MASH_OIDC_CLIENT_ID": "mash"}, "oidc_issuer"),
    ],
)
def test_half_or_unsafe_oidc_settings_are_refused_by_name(
    env: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [e["loc"] for e in caught.value.errors()] == [(named,)]
    monkeypatch.setenv("MASH_OIDC_ISSUER", "https://login.example.org")
    monkeypatch.setenv("MASH_OIDC_CLIENT_ID", "mash")
    assert Settings().oidc_enabled
