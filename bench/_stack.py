"""The product as the pace bench runs it: a data dir with keys and a school directory, the gate's services
in this process, the real `mash` commands as subprocesses, and a ledger seeded through the gate's own code.

``BenchArea`` is one data dir: the embedded broker records itself there (``broker.json``), so `mash police
ingest` and `mash replay` run with ``MASH_DATA_DIR`` find it as they would beside `mash up`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from faststream.kafka import TestKafkaBroker

from bench._synthetic import Record, envelopes, export_csv, records, school_directory, school_urns
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.app.bootstrap import Services, build_broker, build_services
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore
from mash_broker.core.gate_service import process_inbound
from mash_broker.core.settings import Settings
from mash_broker.core.signing import ensure_gate_key, ensure_key, sign
from mash_broker.storage import Ledger

MASH = str(Path(sys.executable).with_name("mash"))
POLICE_ORG = "police:benchpolice"  # the force bench._synthetic's export names
POLL_S = 0.25  # the bench polls the ledger it measures: seldom enough that the poll is not what it measures


@dataclass
class BenchArea:
    """A data dir with the gate's and the bench force's keys; ``url`` a PostgreSQL database, else SQLite."""

    data_dir: Path
    schools: int
    url: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings, since = self.settings(), self.now - timedelta(hours=1)
        ensure_gate_key(settings, since)
        self.key: Ed25519Signer = ensure_key(KeyStore(settings.keys_dir), settings.key_registry_file, POLICE_ORG, since)
        self.urns = school_urns(self.schools)

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.url)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MASH_")}
        env |= {"MASH_DATA_DIR": str(self.data_dir), "MASH_LOG_LEVEL": "WARNING", "MASH_LOG_JSON": "true"}
        if self.url:
            env["MASH_DATABASE_URL"] = self.url
        return env | extra

    async def open_ledger(self) -> Ledger:
        ledger = await Ledger.open(self.settings().ledger_url)
        async with ledger.transaction() as tx:
            await tx.replace_directory(school_directory(self.schools), self.now)
        return ledger

    def export(self, n: int, tag: str, urns: list[str] | None = None) -> Path:
        path = self.data_dir / f"export-{tag}.csv"
        path.write_bytes(export_csv(n, tag, self.now, urns or self.urns))
        return path

    def signed(self, n: int, tag: str, urns: list[str] | None = None) -> list[Record]:
        return records([sign(e, self.key) for e in envelopes(n, tag, self.now, urns or self.urns)])


@asynccontextmanager
async def gate(area: BenchArea, ledger: Ledger, bootstrap: str) -> AsyncIterator[Services]:
    """The gate, the school inboxes and the relay, as `mash up` builds them, in this process."""
    services = build_services(area.settings(), ledger, build_broker(bootstrap, embedded=True))
    await services.start()
    try:
        yield services
    finally:
        await services.stop()


@dataclass(frozen=True)
class Ingest:
    """One `mash police ingest --json` run: exit code, counts, copies sent, seconds to exit."""

    rc: int
    counts: dict[str, int]
    sent: int
    seconds: float
    peak_rss_mb: float


async def run_mash(area: BenchArea, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float, float]:
    """Run `mash ARGS`; (exit code, stdout, seconds, peak RSS in MB of that process, from wait4)."""
    loop = asyncio.get_running_loop()
    out_path, err_path = area.data_dir / "mash.out", area.data_dir / "mash.err"

    def run() -> tuple[int, float]:
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen([MASH, *args], env=env or area.env(), stdout=out, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_maxrss / 1024

    t0 = loop.time()
    rc, peak = await asyncio.to_thread(run)
    seconds = loop.time() - t0
    if rc not in (0, 1):
        sys.stderr.write(err_path.read_text()[-2000:])
    return rc, out_path.read_text(), seconds, peak


async def ingest(area: BenchArea, path: Path, **env: str) -> Ingest:
    rc, out, seconds, peak = await run_mash(area, "police", "ingest", str(path), "--json", env=area.env(**env))
    report: dict[str, Any] = json.loads(out) if out.strip().startswith("{") else {"counts": {}, "receipts": []}
    sent = sum(int(r.get("attempts") or 0) for r in report["receipts"])
    return Ingest(rc, report["counts"], sent, seconds, peak)


async def delivered(ledger: Ledger, target: int, timeout_s: float) -> float:
    """Loop time once ``target`` deliveries are marked delivered (the school inbox has its system receipt)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while (n := await ledger.delivered_count()) < target:
        if loop.time() > end:
            raise TimeoutError(f"{n} of {target} delivered after {timeout_s:g} s")
        await asyncio.sleep(POLL_S)
    return loop.time()


async def seed(area: BenchArea, ledger: Ledger, n: int, tag: str, urns: list[str] | None = None) -> float:
    """Record ``n`` signed police notifications through the gate's own handler and relay, on an in-memory
    broker (no Kafka): the ledger holds what a morning leaves, each delivered to its school inbox.
    Returns the seconds it took."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(area.settings(), ledger, broker)
    async with TestKafkaBroker(broker):
        for start in range(0, n, 500):
            for r in area.signed(min(500, n - start), f"{tag}-{start}", urns):
                await process_inbound(services.gate, r.value, POLICE_NOTIFICATIONS)
            await services.relay.drain()
    return loop.time() - t0


def rss_peak_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
