"""Sign-in throttling that an anonymous caller cannot turn into a lockout of someone else.

Failed sign-ins are counted per (login, client address) and per client address, never per login
alone: guessing a Key Adult's password from one address slows down that address, not the Key Adult
signing in from school. After a few free failures each further attempt waits twice as long as the
last (1 s, 2 s, 4 s ... at most 15 minutes). A throttled attempt is answered before any password
hash, and at most ``HASHES_AT_ONCE`` Argon2 hashes (64 MiB each) run at a time, so a spray of
sign-ins costs neither memory nor other people's sign-ins. What is remembered is bounded: each
table keeps at most ``CAPACITY`` keys and forgets the least recently failed first (never all at
once); a failure a day old is forgotten. Logins are kept only as SHA-256 digests (no email in
memory, and a megabyte-long "login" costs 32 bytes). IPv6 callers are counted per /64 network,
the block one subscriber usually holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

FREE_PER_LOGIN = 5  # failures from one address at one login before it must wait
FREE_PER_ADDRESS = 20  # failures from one address over every login before it must wait
FIRST_WAIT = timedelta(seconds=1)
LONGEST_WAIT = timedelta(minutes=15)
FORGET_AFTER = timedelta(days=1)
CAPACITY = 20_000  # keys per table (about 4 MB at most)
HASHES_AT_ONCE = 2

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failures:
    """How many failures a key has had in a row, and when the last was."""

    count: int
    last: datetime


@dataclass(frozen=True)
class Throttled:
    """The attempt was refused unchecked: try again in ``retry_after_s`` seconds."""

    retry_after_s: int


@dataclass
class Backoff:
    """Failures per key with exponential backoff, in a bounded table that forgets the oldest first."""

    free: int
    capacity: int
    _failures: OrderedDict[Hashable, Failures] = field(default_factory=OrderedDict)

    def wait(self, key: Hashable, now: datetime) -> timedelta:
        """How long ``key`` must still wait before its next attempt (zero: it may try now)."""
        failures = self._failures.get(key)
        if failures is None:
            return timedelta(0)
        if now - failures.last >= FORGET_AFTER:
            del self._failures[key]
            return timedelta(0)
        if failures.count < self.free:
            return timedelta(0)
        backoff = min(FIRST_WAIT * (1 << min(failures.count - self.free, 20)), LONGEST_WAIT)
        return max(failures.last + backoff - now, timedelta(0))

    def failed(self, key: Hashable, now: datetime) -> None:
        earlier = self._failures.pop(key, None)
        count = 1 if earlier is None or now - earlier.last >= FORGET_AFTER else earlier.count + 1
        self._failures[key] = Failures(count, now)  # now the most recent
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)  # the least recently failed

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


@dataclass
class SignInThrottle:
    """Throttles password sign-ins per (login, client address) and per client address."""

    clock: Callable[[], datetime]
    capacity: int = CAPACITY
    hashes_at_once: int = HASHES_AT_ONCE
    _by_login: Backoff = field(init=False)
    _by_address: Backoff = field(init=False)
    _hashing: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._by_login = Backoff(FREE_PER_LOGIN, self.capacity)
        self._by_address = Backoff(FREE_PER_ADDRESS, self.capacity)
        self._hashing = asyncio.Semaphore(self.hashes_at_once)

    async def attempt(self, login: str, address: str, check: Callable[[], Awaitable[T | None]]) -> T | Throttled | None:
        """Run ``check`` (the password hash) unless this caller must wait; count its failure (None)."""
        if throttled := self._throttled(login, address):
            return throttled
        async with self._hashing:
            if throttled := self._throttled(login, address):  # others failed while this one queued
                return throttled
            found = await check()
        if found is None:
            now = self.clock()
            self._by_login.failed(_login_key(login, address), now)
            self._by_address.failed(_network(address), now)
        else:
            self._by_login.forget(_login_key(login, address))
        return found

    def tracked(self) -> int:
        """Keys held in the larger table (each table holds at most ``capacity``)."""
        return max(len(self._by_login), len(self._by_address))

    def _throttled(self, login: str, address: str) -> Throttled | None:
        now = self.clock()
        wait = max(self._by_login.wait(_login_key(login, address), now), self._by_address.wait(_network(address), now))
        return Throttled(max(1, math.ceil(wait.total_seconds()))) if wait else None


def _network(address: str) -> str:
    """The caller as throttled: its IPv4 address, or its IPv6 /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _login_key(login: str, address: str) -> tuple[bytes, str]:
    return hashlib.sha256(login.encode()).digest(), _network(address)
