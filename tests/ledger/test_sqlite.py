"""The ledger and gate-service contracts on SQLite (aiosqlite), a fresh file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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


class SqliteBackend:
    """A fresh ledger file in the test's tmp_path."""

    @pytest.fixture
    async def ledger(self, tmp_path: Path) -> AsyncIterator[Ledger]:
        ledger = await Ledger.open(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
        try:
            yield ledger
        finally:
            await ledger.close()

    @pytest.fixture
    async def other_handle(self, tmp_path: Path) -> AsyncIterator[Ledger]:
        """A second handle on the same file, as another process (`mash school ack`) opens it."""
        other = await Ledger.open(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
        try:
            yield other
        finally:
            await other.close()


class TestSqliteLedger(SqliteBackend, LedgerContract):
    """The storage contract on SQLite."""


class TestSqliteGateService(SqliteBackend, GateServiceContract):
    """The gate and the education inbox over a SQLite ledger."""


class TestSqliteAuditedLog(SqliteBackend, AuditContract):
    """The audited log (Merkle tree, checkpoints, proofs) and its tamper tests on SQLite."""


class TestSqliteConsentService(SqliteBackend, ConsentServiceContract):
    """Consent records through the gate on SQLite."""


class TestSqliteReplay(SqliteBackend, ReplayContract):
    """`mash replay` (re-decide, withhold, re-send, dry run) on SQLite."""


class TestSqliteFrontDoor(SqliteBackend, FrontDoorContract):
    """Contacts checked for quality and outcomes fed back to referrers on SQLite."""


class TestSqliteReport(SqliteBackend, ReportContract):
    """`mash report`'s figures for a synthetic week on SQLite."""


class TestSqliteProjector(SqliteBackend, ProjectorContract):
    """Clocks and alerts follow the audited log, whichever handle wrote it, on SQLite."""


class TestSqliteRegion(SqliteBackend, RegionContract):
    """One export for a region of two authorities (issue 15) on Sqlite."""


class TestSqliteCorrections(SqliteBackend, CorrectionsContract):
    """Corrections and withdrawals of a police notification on SQLite."""
