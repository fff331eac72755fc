"""The backup and restore of docs/operations.md, done: a ledger on PostgreSQL, `pg_dump -Fc`, `pg_restore`
into a fresh database, and `mash audit verify` passes on the restored one (every entry and signed
checkpoint recomputed), while a restore that lost the last entries is caught by the same command."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from mash_broker.app.cli import app
from mash_broker.storage import Ledger

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 17, 6, 30, tzinfo=UTC)


def pg_tool(name: str) -> str:
    """The newest PostgreSQL client binary: /usr/lib/postgresql/<version>/bin, else PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    tool = str(found[-1]) if found else shutil.which(name)
    if tool is None:
        pytest.skip(f"needs {name} (apt-get install postgresql-client)")
    return tool


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases on the test server: the live one and the one a backup is restored into."""
    names = [f"mash_{role}_{uuid.uuid4().hex[:8]}" for role in ("live", "restored")]

    async def run(sql: str) -> None:
        admin = await asyncpg.connect(libpq(postgres_url), timeout=5)
        try:
            for name in names:
                await admin.execute(sql.format(name=name))
        finally:
            await admin.close()

    asyncio.run(run('CREATE DATABASE "{name}"'))
    try:
        yield tuple(make_url(postgres_url).set(database=n).render_as_string(hide_password=False) for n in names)  # type: ignore[misc]
    finally:
        asyncio.run(run('DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def mash(data_dir: Path, database_url: str, *args: str) -> tuple[int, str]:
    env = {"MASH_DATA_DIR": str(data_dir), "MASH_DATABASE_URL": database_url, "MASH_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout + result.stderr


def write_ledger(url: str, count: int) -> None:
    async def build() -> None:
        ledger = await Ledger.open(url)
        try:
            for n in range(count):
                mid, at = uuid.uuid4(), T0 + timedelta(minutes=n)
                async with ledger.transaction() as tx:
                    await tx.insert_message(
                        message_id=mid,
                        kind="notification.encompass",
                        sender_org="police:alpha",
                        correlation_id=mid,
                        topic="police.notification.v1",
                        content_hash="0" * 64,
                        received_at=at,
                        envelope="{}",
                    )
                    await tx.event(
                        "message.received", mid, at, kind="notification.encompass", sender_org="police:alpha"
                    )
                    await tx.event("decision.recorded", mid, at, verdict="share", reasons=["statutory_duty"])
        finally:
            await ledger.close()

    asyncio.run(build())


def test_a_dump_restored_into_a_fresh_database_verifies(tmp_path: Path, databases: tuple[str, str]) -> None:
    live, restored = databases
    data = tmp_path / "mash"
    data.mkdir()
    write_ledger(live, 10)
    code, out = mash(data, live, "audit", "checkpoint")  # the running stack signs these every minute
    assert code == 0, out
    code, out = mash(data, live, "audit", "verify")
    assert code == 0, out
    assert out.startswith("OK: 20 entries and 1 signed checkpoints verified"), out

    dump = tmp_path / "ledger.dump"
    subprocess.run(
        [pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", libpq(live)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [pg_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={libpq(restored)}", str(dump)],
        check=True,
        capture_output=True,
        timeout=120,
    )

    code, out = mash(data, restored, "audit", "verify")
    assert code == 0, out
    assert out.startswith("OK: 20 entries and 1 signed checkpoints verified"), out


def test_a_restore_missing_entries_a_checkpoint_covered_fails_verification(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    live, restored = databases
    data = tmp_path / "mash"
    data.mkdir()
    write_ledger(live, 3)
    assert mash(data, live, "audit", "checkpoint")[0] == 0
    dump = tmp_path / "ledger.dump"
    subprocess.run(
        [pg_tool("pg_dump"), "--format=custom", f"--file={dump}", libpq(live)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [pg_tool("pg_restore"), "--no-owner", f"--dbname={libpq(restored)}", str(dump)],
        check=True,
        capture_output=True,
        timeout=120,
    )

    async def lose_the_last_entry() -> None:
        admin = await asyncpg.connect(libpq(restored), timeout=5)
        try:
            await admin.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
        finally:
            await admin.close()

    asyncio.run(lose_the_last_entry())
    code, out = mash(data, restored, "audit", "verify")
    assert code == 1, out
    assert "FAILS" in out
