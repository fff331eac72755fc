"""Web sign-in accounts: a school's Key Adult (from the school directory) or a MASH manager.

Passwords are kept only as Argon2id hashes (argon2-cffi's defaults: memory-hard). A Key Adult signs
in with the email the school directory gives them; an account stops working as soon as the person
is no longer one of their school's Key Adults. Hashing runs in a worker thread so the event loop
(and the gate) never waits on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mash_broker.contracts import NotFound
from mash_broker.core.records import WebAccountRecord
from mash_broker.storage import Ledger

Role = Literal["key_adult", "mash"]
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Verified when the login is unknown, so a wrong login takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class WeakPassword(ValueError):
    """The password is too short to set."""


@dataclass(frozen=True)
class Account:
    """Who is signed in: their login, role, name and (a Key Adult) school."""

    login: str
    role: Role
    name: str
    urn: str | None


async def set_password(ledger: Ledger, who: str, name: str, password: str, now: datetime) -> Account:
    """Set (or replace) the password of a Key Adult (``who`` is their school's URN) or of a MASH
    manager (``who`` is ``mash``). A Key Adult must be in the school directory."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if who == "mash":
        account = Account(login=name.strip().casefold(), role="mash", name=name.strip(), urn=None)
    else:
        adult = next((a for a in await ledger.key_adults(who) if a.name.casefold() == name.strip().casefold()), None)
        if adult is None:
            raise NotFound(
                f"{name!r} is not a Key Adult of school {who} in the directory", record=f"school {who}", field="name"
            )
        account = Account(login=adult.email.casefold(), role="key_adult", name=adult.name, urn=who)
    hashed = await asyncio.to_thread(_hasher.hash, password)
    async with ledger.transaction() as tx:
        await tx.set_web_account(
            login=account.login, role=account.role, urn=account.urn, name=account.name, password_hash=hashed, at=now
        )
        await tx.event("web.password_set", None, now, role=account.role, school=account.urn)
    return account


async def authenticate(ledger: Ledger, login: str, password: str) -> Account | None:
    """The account if the password is right and (a Key Adult) they are still in the directory."""
    row = await ledger.web_account(login.strip().casefold())
    if row is None:
        await asyncio.to_thread(_verify, _DUMMY_HASH, password)
        return None
    if not await asyncio.to_thread(_verify, row.password_hash, password):
        return None
    account = _account(row)
    return account if await still_allowed(ledger, account) else None


async def account_for_email(ledger: Ledger, email: str) -> Account | None:
    """The person a provider-verified email names (OIDC sign-in): their web account if it has that
    login, else the Key Adult the school directory lists with that email (at exactly one school);
    None if nobody, or if they may no longer sign in."""
    login = email.strip().casefold()
    row = await ledger.web_account(login)
    adults = await ledger.key_adults_with_email(login)
    if row is not None:
        account = _account(row)
    elif len(adults) == 1:
        account = Account(login=login, role="key_adult", name=adults[0].name, urn=adults[0].urn)
    else:
        return None
    return account if await still_allowed(ledger, account) else None


async def still_allowed(ledger: Ledger, account: Account) -> bool:
    """A Key Adult's account works only while the directory names them for that school."""
    if account.role == "mash":
        return True
    if account.urn is None:
        return False
    return any(a.email.casefold() == account.login for a in await ledger.key_adults(account.urn))


def _account(row: WebAccountRecord) -> Account:
    role: Role = "mash" if row.role == "mash" else "key_adult"
    return Account(login=row.login, role=role, name=row.name, urn=row.urn)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
