"""Web sessions: held in the serving process, keyed by a random token the browser keeps in an
HttpOnly, SameSite=Strict cookie. A session ends after ``idle`` without a request, ``max_age``
after sign-in, or on sign-out; a restart signs everyone out (nothing to steal from the ledger).
Each session carries its own CSRF token, which every state-changing form must echo.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mash_broker.app.web.accounts import Account


@dataclass
class Session:
    """One signed-in person."""

    account: Account
    csrf: str
    started_at: datetime
    last_seen: datetime


@dataclass
class Sessions:
    """The live sessions (failed sign-ins are counted by ``app.web.throttle``)."""

    clock: Callable[[], datetime]
    idle: timedelta
    max_age: timedelta
    _live: dict[str, Session] = field(default_factory=dict)

    def start(self, account: Account) -> str:
        """A new session for ``account``; returns the cookie value (only its hash is kept)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self._purge(now)
        self._live[_key(token)] = Session(account, secrets.token_urlsafe(32), now, now)
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie value, its idle time reset; None if absent or expired."""
        if not token:
            return None
        key = _key(token)
        session = self._live.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle or now - session.started_at > self.max_age:
            del self._live[key]
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._live.pop(_key(token), None)

    def end_all(self, login: str) -> None:
        """Sign a person out everywhere (their account no longer works)."""
        for key in [k for k, s in self._live.items() if s.account.login == login]:
            del self._live[key]

    def _purge(self, now: datetime) -> None:
        """Forget sessions that have expired without being used again."""
        for key in [
            k for k, s in self._live.items() if now - s.last_seen > self.idle or now - s.started_at > self.max_age
        ]:
            del self._live[key]


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
