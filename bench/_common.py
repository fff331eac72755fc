"""What the benches share: a line describing the machine, profile output, a fresh ledger (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import platform
import pstats
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mash_broker.storage import Ledger


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs{f' ({model})' if model else ''}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, load average {load}"
    )


def print_profile(profile: cProfile.Profile, path: str, what: str, top: int = 25) -> None:
    """Save the stats to ``path`` and print the ``top`` functions by own time and by cumulative time."""
    profile.dump_stats(path)
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profile, stream=buf).sort_stats(key).print_stats(top)
        print(f"\n-- profile of {what}, top {top} by {key}; full stats in {path}")
        print("\n".join(buf.getvalue().splitlines()[6:]))


@contextlib.asynccontextmanager
async def sqlite_ledger(data_dir: Path) -> AsyncIterator[Ledger]:
    """A ledger in ``data_dir/ledger.sqlite3``: the file ``mash`` uses with ``MASH_DATA_DIR=data_dir``."""
    ledger = await Ledger.open(f"sqlite+aiosqlite:///{data_dir / 'ledger.sqlite3'}")
    try:
        yield ledger
    finally:
        await ledger.close()


@contextlib.asynccontextmanager
async def postgres_ledger(url: str) -> AsyncIterator[Ledger]:
    """A ledger in a fresh schema of ``url``'s database; the schema is dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        ledger = await Ledger.open(url, connect_args={"server_settings": {"search_path": schema}})
        try:
            yield ledger
        finally:
            await ledger.close()
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()
