"""The async SQLAlchemy engine: SQLite file by default (WAL, writers lock at BEGIN), PostgreSQL when configured."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mash_broker.storage import schema as t


async def open_engine(url: str, *, create: bool = True, **engine_kw: Any) -> AsyncEngine:
    """An engine for ``url``; with ``create``, the ledger's tables are made if missing."""
    # hide_parameters: a database error must never carry envelopes or names into a log line.
    engine = create_async_engine(url, hide_parameters=True, **engine_kw)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    if create:
        async with engine.begin() as conn:
            await conn.run_sync(t.metadata.create_all)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Several processes share the file (mash up, ingest, school ack): WAL, a busy timeout, and
    # transactions that take the write lock when they begin, so none fails upgrading its lock.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front so they queue on busy_timeout instead of failing to upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")
