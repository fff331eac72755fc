"""Web sign-in accounts: a school's Key Adult (from the school directory), a MASH manager or a police force.

A MASH manager is the regional (or single-area) manager, ``mash``, or one local authority's, ``mash:<code>``
(in a region, ``MASH_AREAS_DIR``): the role column holds ``mash`` or ``mash:<code>``, so an existing ledger
needs no new column. An authority's manager may sign in only while the region has that authority. A police
force's account (role ``police:<force>``) sees what became of its own notifications across the region; in
a region that names its forces (``region.toml`` ``forces``), only while the region has that force.

Passwords are kept only as Argon2id hashes (argon2-cffi's defaults: memory-hard). A Key Adult signs
in with the email the school directory gives them; an account stops working as soon as the person
is no longer one of their school's Key Adults. Hashing runs in a worker thread so the event loop
(and the gate) never waits on it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mash_broker.contracts import NotFound
from mash_broker.core.areas import AREA_CODE
from mash_broker.core.records import WebAccountRecord
from mash_broker.storage import Ledger

Role = Literal["key_adult", "mash", "police"]
FORCE = re.compile(r"police:[a-z0-9][a-z0-9_-]{0,62}")
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Verified when the login is unknown, so a wrong login takes as long as a wrong password.


@cache
def _dummy_hash() -> str:
    """A hash to check an unknown login against, so it takes as long as a known one. Made on first use,
    not at import: a hash costs about half a second, which every `mash` command would pay."""
    return _hasher.hash("not a password anyone has")


def _verify_unknown(password: str) -> bool:
    return _verify(_dummy_hash(), password)


class WeakPassword(ValueError):
    """The password is too short to set."""


class NotAnAuthority(ValueError):
    """``mash:<code>`` does not name an authority (a three-digit code, of the region)."""


class NotAForce(ValueError):
    """``police:<force>`` does not name a police force (lower-case letters, digits, ``-`` or ``_``)."""


@dataclass(frozen=True)
class Account:
    """Who is signed in: their login, role, name, (a Key Adult) school, (an authority's MASH manager)
    authority (``area`` None is the regional or single-area manager) and (a force's account) force."""

    login: str
    role: Role
    name: str
    urn: str | None
    area: str | None = None
    force: str | None = None  # ``police:<force>``

    @property
    def org(self) -> str:
        """Whose they are, as the audited log names organisations: ``school:<urn>``, ``mash:<code>``, ``mash``,
        ``police:<force>``."""
        if self.urn:
            return f"school:{self.urn}"
        if self.force:
            return self.force
        return f"mash:{self.area}" if self.area else self.role

    @property
    def stored_role(self) -> str:
        if self.force:
            return self.force
        return f"mash:{self.area}" if self.role == "mash" and self.area else self.role


async def set_password(ledger: Ledger, who: str, name: str, password: str, now: datetime) -> Account:
    """Set (or replace) the password of a Key Adult (``who`` is their school's URN), of a MASH manager
    (``who`` is ``mash``, or ``mash:<code>`` for one authority of a region) or of a police force
    (``police:<force>``). A Key Adult must be in the school directory; an authority's code and a force are
    checked against the region by the caller."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    cls, _, code = who.partition(":")
    if cls == "police":
        if not FORCE.fullmatch(who):
            raise NotAForce(f"{who!r}: a police force's account is police:<force>, e.g. police:examplepolice")
        account = Account(login=name.strip().casefold(), role="police", name=name.strip(), urn=None, force=who)
    elif cls == "mash":
        if code and not AREA_CODE.fullmatch(code):
            raise NotAnAuthority(f"{who!r}: an authority's MASH manager is mash:<its three-digit code>, e.g. mash:929")
        account = Account(login=name.strip().casefold(), role="mash", name=name.strip(), urn=None, area=code or None)
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
            login=account.login,
            role=account.stored_role,
            urn=account.urn,
            name=account.name,
            password_hash=hashed,
            at=now,
        )
        area = {"area": account.area} if account.area else {}
        force = {"force": account.force} if account.force else {}
        await tx.event("web.password_set", None, now, role=account.role, school=account.urn, **area, **force)
    return account


async def authenticate(
    ledger: Ledger, login: str, password: str, areas: Collection[str] = (), forces: Collection[str] | None = None
) -> Account | None:
    """The account if the password is right and (a Key Adult) they are still in the directory, (an
    authority's MASH manager) their authority is one of the region's ``areas``, (a force) it is one of the
    region's ``forces`` (None: any force)."""
    row = await ledger.web_account(login.strip().casefold())
    if row is None:
        await asyncio.to_thread(_verify_unknown, password)
        return None
    if not await asyncio.to_thread(_verify, row.password_hash, password):
        return None
    account = _account(row)
    return account if await still_allowed(ledger, account, areas, forces) else None


async def account_for_email(
    ledger: Ledger, email: str, areas: Collection[str] = (), forces: Collection[str] | None = None
) -> Account | None:
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
    return account if await still_allowed(ledger, account, areas, forces) else None


async def still_allowed(
    ledger: Ledger, account: Account, areas: Collection[str] = (), forces: Collection[str] | None = None
) -> bool:
    """A Key Adult's account works only while the directory names them for that school; an authority's
    MASH manager's only while ``areas`` (the region's authorities) has theirs; a force's only while
    ``forces`` (the region's, None: any) has it."""
    if account.role == "police":
        return account.force is not None and (forces is None or account.force in forces)
    if account.role == "mash":
        return account.area is None or account.area in areas
    if account.urn is None:
        return False
    return any(a.email.casefold() == account.login for a in await ledger.key_adults(account.urn))


def _account(row: WebAccountRecord) -> Account:
    cls, _, code = row.role.partition(":")
    if cls == "police":
        return Account(login=row.login, role="police", name=row.name, urn=None, force=row.role)
    if cls == "mash":
        return Account(login=row.login, role="mash", name=row.name, urn=None, area=code or None)
    return Account(login=row.login, role="key_adult", name=row.name, urn=row.urn)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
