"""The ledger and gate-service contracts on PostgreSQL (asyncpg), a fresh schema per test.

The server is the session's ``postgres_url`` fixture (tests/conftest.py): the one named by
``MASH_TEST_POSTGRES_URL``, else a throwaway server the suite starts itself (docs/testing.md). If there is
none, every test here skips and says why (fails, under CI=true); none passes vacuously.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from services.require import unavailable
from sqlalchemy.engine import make_url

from mash_broker.storage import Ledger

from .audit_contract import AuditContract
from .consent_contract import ConsentServiceContract
from .contract import LedgerContract
from .corrections_contract import CorrectionsContract
from .front_door_contract import FrontDoorContract
from .gate_contract import GateServiceContract
from .projector_contract import ProjectorContract
from .region_contract import RegionContract
from .replay_contract import ReplayContract
from .report_contract import ReportContract

pytestmark = pytest.mark.postgres

_unreachable: list[str] = []  # the first failure's reason, so later tests skip without waiting again


async def _connect_admin(postgres_url: str) -> asyncpg.Connection:
    url = make_url(postgres_url)
    if _unreachable:
        unavailable(_unreachable[0])
    try:
        return await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _unreachable.append(
            f"needs PostgreSQL, but {url.render_as_string(hide_password=True)} is not reachable"
            f" (set MASH_TEST_POSTGRES_URL, or unset it for a throwaway server):"
            f" {type(exc).__name__}: {exc}"
        )
        unavailable(_unreachable[0])


class PostgresBackend:
    """A fresh ledger in its own schema, created for the test and dropped after it."""

    @pytest.fixture
    async def pg_schema(self, postgres_url: str) -> AsyncIterator[str]:
        """A fresh schema for the test, dropped after it."""
        admin = await _connect_admin(postgres_url)
        schema = f"t_{uuid.uuid4().hex}"
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            yield schema
        finally:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()

    @pytest.fixture
    async def ledger(self, postgres_url: str, pg_schema: str) -> AsyncIterator[Ledger]:
        ledger = await Ledger.open(postgres_url, connect_args={"server_settings": {"search_path": pg_schema}})
        try:
            yield ledger
        finally:
            await ledger.close()

    @pytest.fixture
    async def other_handle(self, postgres_url: str, pg_schema: str, ledger: Ledger) -> AsyncIterator[Ledger]:
        """A second handle on the same schema, as another process (`mash school ack`) opens it."""
        other = await Ledger.open(postgres_url, connect_args={"server_settings": {"search_path": pg_schema}})
        try:
            yield other
        finally:
            await other.close()


class TestPostgresLedger(PostgresBackend, LedgerContract):
    """The storage contract on PostgreSQL."""


class TestPostgresGateService(PostgresBackend, GateServiceContract):
    """The gate and the education inbox over a PostgreSQL ledger."""


class TestPostgresAuditedLog(PostgresBackend, AuditContract):
    """The audited log (Merkle tree, checkpoints, proofs) and its tamper tests on PostgreSQL."""


class TestPostgresConsentService(PostgresBackend, ConsentServiceContract):
    """Consent records through the gate on PostgreSQL."""


class TestPostgresReplay(PostgresBackend, ReplayContract):
    """`mash replay` (re-decide, withhold, re-send, dry run) on PostgreSQL."""


class TestPostgresFrontDoor(PostgresBackend, FrontDoorContract):
    """Contacts checked for quality and outcomes fed back to referrers on PostgreSQL."""


class TestPostgresReport(PostgresBackend, ReportContract):
    """`mash report`'s figures for a synthetic week on PostgreSQL."""


class TestPostgresProjector(PostgresBackend, ProjectorContract):
    """Clocks and alerts follow the audited log, whichever handle wrote it, on PostgreSQL."""


class TestPostgresRegion(PostgresBackend, RegionContract):
    """One export for a region of two authorities (issue 15) on PostgreSQL."""


class TestPostgresCorrections(PostgresBackend, CorrectionsContract):
    """Corrections and withdrawals of a police notification on PostgreSQL."""
