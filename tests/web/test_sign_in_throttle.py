"""Sign-in throttling an anonymous caller cannot turn into a lockout of someone else: failures count per
(login, client address) and per client address, with exponential backoff; a throttled attempt is refused
before any password hash; the failures kept are bounded (the oldest forgotten first), never cleared at once;
and at most two password hashes run at a time, so a spray of sign-ins cannot fill memory."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import httpx
import pytest

from mash_broker.app.web import accounts
from mash_broker.app.web.throttle import Backoff
from web.conftest import PASSWORD, START, WebStack

ALEX, JO, SAM = "alex.keyadult@example.org", "jo.testperson@example.org", "sam.deputy@example.org"
CSRF = "a-login-form-token"


class CountingHasher:
    """Stands in for the Argon2 check: counts calls and the most that ran at once."""

    def __init__(self, real: object, pause_s: float = 0.0) -> None:
        self.real = real
        self.pause_s = pause_s
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, hashed: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.pause_s)
            return password == PASSWORD  # every account in this module has PASSWORD
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    fake = CountingHasher(accounts._verify)
    monkeypatch.setattr(accounts, "_verify", fake)
    return fake


@pytest.fixture(scope="module", autouse=True)
def _accounts(web_stack: WebStack) -> None:
    from mash_broker.app.web.accounts import set_password

    for name in ("Sam Deputy", "Chris Placeholder"):
        web_stack.call(
            set_password(
                web_stack.ledger, "900001" if name == "Sam Deputy" else "900002", name, PASSWORD, web_stack.clock()
            )
        )


def sign_in_from(stack: WebStack, address: str, login: str, password: str) -> httpx.Response:
    """One sign-in POST from ``address`` (a loopback address of its own: 127.0.0.0/8 is all loopback)."""
    with httpx.Client(
        base_url=stack.web.url,
        follow_redirects=False,
        timeout=10,
        cookies={"mash_login_csrf": CSRF},
        transport=httpx.HTTPTransport(local_address=address),
    ) as c:
        return c.post("/login", data={"login": login, "password": password, "csrf": CSRF})


async def sign_in_in_process(stack: WebStack, address: str, login: str, password: str) -> int:
    """The same POST through the app in process (no socket), as if from ``address``."""
    transport = httpx.ASGITransport(app=stack.web.server.config.app, client=(address, 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies={"mash_login_csrf": CSRF}
    ) as c:
        r = await c.post("/login", data={"login": login, "password": password, "csrf": CSRF})
        return r.status_code


def test_failures_from_one_address_do_not_stop_the_account_signing_in_from_another(
    web_stack: WebStack, hasher: CountingHasher
) -> None:
    for _ in range(6):
        assert sign_in_from(web_stack, "127.0.0.2", ALEX, "a guess").status_code == 401
    assert sign_in_from(web_stack, "127.0.0.3", ALEX, PASSWORD).status_code == 303  # the Key Adult signs in
    refused = sign_in_from(web_stack, "127.0.0.2", ALEX, PASSWORD)
    assert refused.status_code == 401  # the guessing address is throttled, even with the right password
    assert int(refused.headers["retry-after"]) >= 1


def test_a_throttled_attempt_does_not_hash_a_password(web_stack: WebStack, hasher: CountingHasher) -> None:
    for _ in range(5):
        sign_in_from(web_stack, "127.0.0.4", SAM, "a guess")
    before = hasher.calls
    assert sign_in_from(web_stack, "127.0.0.4", SAM, "another guess").status_code == 401
    assert hasher.calls == before  # the (login, address) throttle answers before the hash
    for n in range(30):  # one address spraying many logins
        sign_in_from(web_stack, "127.0.0.5", f"nobody{n}@example.org", "a guess")
    assert hasher.calls < before + 30  # the address throttle stopped hashing part-way
    before = hasher.calls
    assert sign_in_from(web_stack, "127.0.0.5", "yet.another@example.org", "a guess").status_code == 401
    assert hasher.calls == before


def test_ten_thousand_distinct_failed_logins_do_not_lift_a_throttle(
    web_stack: WebStack, hasher: CountingHasher
) -> None:
    for _ in range(6):
        sign_in_from(web_stack, "127.0.0.6", JO, "a guess")
    throttle = web_stack.web.server.config.app.state.throttle  # type: ignore[attr-defined]

    async def refused() -> None:
        return None  # a wrong password, as the account check answers it

    async def spray() -> list[int]:
        # The first 50 through the app's sign-in route; the other 10,000 straight into the app's own
        # throttle (the route adds a ledger lookup per attempt and nothing the throttle keeps).
        statuses = [
            await sign_in_in_process(web_stack, f"10.0.0.{n}", f"guess{n}@example.org", "a guess") for n in range(50)
        ]
        for n in range(50, 10_050):
            address = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
            assert await throttle.attempt(f"guess{n}@example.org", address, refused) is None
        return statuses

    assert set(web_stack.call(spray(), timeout=300)) == {401}
    assert 10_050 <= throttle.tracked() <= throttle.capacity  # none forgotten, the table not flushed
    assert sign_in_from(web_stack, "127.0.0.6", JO, PASSWORD).status_code == 401  # still throttled
    assert sign_in_from(web_stack, "127.0.0.7", JO, PASSWORD).status_code == 303


def test_at_most_two_password_hashes_run_at_once(web_stack: WebStack, hasher: CountingHasher) -> None:
    hasher.pause_s = 0.2

    async def burst() -> list[int]:
        return list(
            await asyncio.gather(
                *(sign_in_in_process(web_stack, f"192.0.2.{n}", f"burst{n}@example.org", "a guess") for n in range(12))
            )
        )

    assert set(web_stack.call(burst())) == {401}
    assert hasher.calls == 12
    assert hasher.most_at_once <= 2


def test_the_failures_kept_are_bounded_and_the_least_recent_forgotten_first() -> None:
    table = Backoff(free=1, capacity=100)
    table.failed("oldest", START)
    for n in range(150):
        table.failed(n, START)
    assert len(table) == 100  # never cleared at once: it holds the 100 most recent
    assert table.wait("oldest", START) == timedelta(0)
    assert table.wait(149, START) == timedelta(seconds=1)
    table.failed(149, START)
    assert table.wait(149, START) == timedelta(seconds=2)  # each further failure doubles the wait
