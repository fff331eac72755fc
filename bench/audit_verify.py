"""How many log entries per second `mash audit verify` checks, against plain SHA-256 of the same bytes.

    .venv/bin/python -m bench.audit_verify [--entries N] [--checkpoint-every K] [--url URL] [--profile FILE]

Builds a synthetic audited log in a fresh ledger (SQLite in a temporary folder, or a fresh schema of
``--url``'s PostgreSQL database, dropped afterwards): N events with the details the gate, the school
inboxes and the CLI write (``message.received``, ``decision.recorded``, ``delivery.queued``,
``delivery.received``, ``notification.read``, ``share.referred``...; synthetic ids, no personal data),
each with the leaf hash ``Tx.event`` records, the stored copies the gate writes beside them (messages,
deliveries, outbox records, ~1 KB each, their hashes in the entries), and a checkpoint signed by the
gate's key (``Checkpointer``) every K entries. Then times:

(a) ``broker.audit.verify.verify_log``: the function ``mash audit verify`` calls, with the keys it
    loads; on SQLite also the whole command in a new process (``mash audit verify --json``);
(b) plain ``hashlib.sha256`` over the same leaf bytes (``0x00 || RFC 8785 entry``): one digest per
    entry, the RFC 6962 tree over those digests (n - 1 more), and one stream over all the bytes;
(c) where (a)'s time goes: the same stages, each timed alone (reading pages, canonical JSON, SHA-256,
    the tree, the checkpoints, the stored copies).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64decode
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from sqlalchemy import bindparam, text

from bench._common import machine, postgres_ledger, print_profile, sqlite_ledger
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.core.audit.checkpoints import Checkpointer
from mash_broker.core.audit.copies import stored_sha256
from mash_broker.core.audit.entries import as_stored, canonical_detail, iso_utc, joined_entry
from mash_broker.core.audit.keys import KeyStore, verify_signature
from mash_broker.core.audit.leaves import LeafHasher
from mash_broker.core.audit.log import PAGE, Entry, checkpoints
from mash_broker.core.audit.merkle import leaf_hash
from mash_broker.core.audit.stored import CopyChecker
from mash_broker.core.audit.verify import LogVerifier, Report, verify_log
from mash_broker.core.logging import configure_logging
from mash_broker.core.messages import GATE_ORG
from mash_broker.storage import Ledger
from mash_broker.storage import schema as t

DEFAULT_ENTRIES = 100_000
DEFAULT_CHECKPOINT_EVERY = 1000  # the stack signs every 60 s: about a minute's entries at a busy hour
WRITE_BATCH = 2000
FALLBACK_SAMPLE = 20_000  # entries timed through the full RFC 8785 check, the path of a page the columns do not prove
POLICY_VERSION = "example-area-2026.11-1"
ENCOMPASS_FIELDS = sorted(
    [
        "subject.given_name",
        "subject.family_name",
        "subject.date_of_birth",
        "payload.police_reference",
        "payload.occurred_at",
        "payload.child_present",
        "payload.summary_for_school",
    ]
)

T = TypeVar("T")


# -- the synthetic log --------------------------------------------------------------------------------


Stored = list[tuple[str, dict[str, Any]]]  # rows for the ledger's tables that hold copies: (table, row)


def _envelope(rnd: random.Random, mid: str, kind: str) -> str:
    """A stand-in for a stored envelope (~1 KB of synthetic JSON; no personal data): only its hash is checked."""
    return json.dumps({"message_id": mid, "kind": kind, "filler": f"{rnd.getrandbits(4096):01024x}"})


def _notification(rnd: random.Random, at: datetime) -> Iterator[tuple[str, str | None, dict[str, Any], Stored]]:
    """The events one police notification leaves in the log, as the gate and a school inbox write them, with
    the stored copies (message, delivery, outbox records) the gate writes beside them."""
    mid, digest = str(uuid.UUID(int=rnd.getrandbits(128))), f"{rnd.getrandbits(256):064x}"
    envelope = _envelope(rnd, mid, "notification.encompass")
    message = {
        "message_id": mid,
        "kind": "notification.encompass",
        "sender_org": "police:benchpolice",
        "correlation_id": mid,
        "topic": POLICE_NOTIFICATIONS,
        "content_hash": digest,
        "received_at": at,
        "envelope": envelope,
    }
    yield (
        "message.received",
        mid,
        {
            "kind": "notification.encompass",
            "sender_org": "police:benchpolice",
            "topic": POLICE_NOTIFICATIONS,
            "content_hash": digest,
            "envelope_sha256": stored_sha256(envelope),
        },
        [("messages", message)],
    )
    if rnd.random() < 0.05:  # no school given or not in the directory: a person routes it
        reasons = ["statutory_duty", "school_not_in_directory"]
        yield "decision.recorded", mid, {"verdict": "refer", "reasons": reasons, "policy_version": POLICY_VERSION}, []
        oid = str(uuid.UUID(int=rnd.getrandbits(128)))
        referred = {"outbox_id": oid, "outbox_sha256": stored_sha256(envelope)}
        queued = _outbox(oid, "mash.queue.v1", envelope, at)
        yield "share.referred", mid, {"queue": "mash:hub", "reason": "school_not_in_directory", **referred}, queued
        return
    reasons = ["statutory_duty", "minimum_fields_released"]
    yield "decision.recorded", mid, {"verdict": "share", "reasons": reasons, "policy_version": POLICY_VERSION}, []
    delivery = {
        "delivery_id": str(uuid.UUID(int=rnd.getrandbits(128))),
        "recipient": f"school:{990000 + rnd.randrange(300):06d}",
    }
    notify_by = (at + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    copy, oid = _envelope(rnd, delivery["delivery_id"], "delivery"), str(uuid.UUID(int=rnd.getrandbits(128)))
    stored: Stored = [
        (
            "deliveries",
            {
                **delivery,
                "message_id": mid,
                "purpose": "operation_encompass",
                "notify_by": notify_by,
                "created_at": at,
                "envelope": copy,
            },
        ),
        *_outbox(oid, "education.delivery.v1", copy, at),
    ]
    yield (
        "delivery.queued",
        mid,
        {
            **delivery,
            "agreement": "operation-encompass-school-key-adults",
            "fields": ENCOMPASS_FIELDS,
            "consent_id": None,
            "notify_by": notify_by.isoformat(),
            "envelope_sha256": stored_sha256(copy),
            "outbox_id": oid,
        },
        stored,
    )
    yield "delivery.received", mid, delivery, []
    if rnd.random() < 0.7:
        yield "notification.read", mid, delivery, []


def _outbox(outbox_id: str, topic: str, value: str, at: datetime) -> Stored:
    return [("outbox", {"outbox_id": outbox_id, "topic": topic, "value": value, "headers": {}, "created_at": at})]


def synthetic_events(
    n: int, start: datetime, seed: int = 1, *, old_append: bool = False
) -> Iterator[tuple[dict[str, Any], Stored]]:
    """N rows for the ``events`` table, seq 1..N, as ``Tx.event`` writes them (same detail text, same leaf hash),
    each with the stored copies written beside it. ``old_append``: as it wrote them before details were stored
    as their RFC 8785 text (a dict the JSON column serialises with ``json.dumps``)."""
    rnd = random.Random(seed)  # noqa: S311 -- reproducible made-up data, not secrets
    seq, at = 0, start
    while True:
        at += timedelta(seconds=rnd.uniform(0.5, 30), microseconds=rnd.randrange(1_000_000))
        for event_type, mid, detail, copies in _notification(rnd, at):
            stored = as_stored(detail)
            seq += 1
            text = canonical_detail(stored)
            row = {
                "seq": seq,
                "at": at,
                "event_type": event_type,
                "message_id": mid,
                "detail": json.dumps(stored) if old_append else text,
                "leaf_hash": leaf_hash(joined_entry(iso_utc(at), event_type, mid, text)).hex(),
            }
            yield row, copies
            if seq == n:
                return


_INSERT_EVENTS = t.events.insert().values(detail=bindparam("detail", type_=t.JsonText()))


async def build_log(ledger: Ledger, keys_dir: Path, n: int, every: int, *, old_append: bool = False) -> int:
    """Write N events, signing a checkpoint (with the gate's key, made in ``keys_dir``) every ``every``
    entries. Returns the number of checkpoints."""
    start = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
    clock = iter(start + timedelta(minutes=i) for i in range(1, 10**9))
    checkpointer = Checkpointer(ledger, KeyStore(keys_dir).signer(GATE_ORG), lambda: next(clock))
    rows = synthetic_events(n, start, old_append=old_append)
    written, signed = 0, 0
    while written < n:
        until = min(n, written + WRITE_BATCH, (written // every + 1) * every)
        batch = [next(rows) for _ in range(until - written)]
        tables: dict[str, list[dict[str, Any]]] = {}
        for _, copies in batch:
            for table, row in copies:
                tables.setdefault(table, []).append(row)
        async with ledger.transaction() as tx:
            await tx.conn.execute(_INSERT_EVENTS, [event for event, _ in batch])
            for table, stored_rows in tables.items():
                await tx.conn.execute(t.metadata.tables[table].insert(), stored_rows)
        written = until
        if written % every == 0 and await checkpointer.checkpoint() is not None:
            signed += 1
    return signed


# -- timing -------------------------------------------------------------------------------------------


@dataclass
class Rate:
    label: str
    short: str
    n: int
    seconds: float
    nbytes: int = 0

    @property
    def per_s(self) -> float:
        return self.n / self.seconds

    def line(self) -> str:
        mb = f" = {self.nbytes / self.seconds / 1e6:8.1f} MB/s" if self.nbytes else ""
        return f"{self.label:<58} {self.n:>8} in {self.seconds:8.3f} s = {self.per_s:11,.0f} entries/s{mb}"


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeat`` runs (the least disturbed by anything else on the machine), and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    return best, result


async def best_of_async(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def plain_tree_root(digests: list[bytes]) -> bytes:
    """The RFC 6962 root over leaf digests, level by level with bare hashlib (an odd last node moves up)."""
    sha256 = hashlib.sha256
    level = digests
    while len(level) > 1:
        paired = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0] if level else sha256(b"").digest()


def plain_sha256(leaves: list[bytes], repeat: int) -> tuple[Rate, Rate, Rate, bytes]:
    """(b): one digest per leaf; those digests and the tree over them; one stream over every byte."""
    sha256, n, nbytes = hashlib.sha256, len(leaves), sum(map(len, leaves))
    s_leaves, _ = best_of(repeat, lambda: [sha256(x).digest() for x in leaves])
    s_tree, root = best_of(repeat, lambda: plain_tree_root([sha256(x).digest() for x in leaves]))
    blob = b"".join(leaves)
    s_stream, _ = best_of(repeat, lambda: sha256(blob).digest())
    return (
        Rate("(b) plain SHA-256, one digest per leaf", "per leaf", n, s_leaves, nbytes),
        Rate("(b) plain SHA-256, leaves + RFC 6962 tree (root)", "leaves + tree", n, s_tree, nbytes),
        Rate("(b) plain SHA-256, one stream over all the bytes", "one stream", n, s_stream, nbytes),
        root,
    )


async def read_raw(ledger: Ledger) -> list[list[Any]]:
    return [list(rows) async for rows in ledger.raw_entry_pages(page=PAGE)]


def plain_leaves(pages: list[list[Any]], *, old_append: bool = False) -> list[bytes]:
    """Each entry's leaf bytes (0x00 || RFC 8785 JSON): the stored columns joined, as ``Tx.event`` hashed them."""
    if old_append:
        pages = [[(*r[:4], canonical_detail(json.loads(r[4])), r[5]) for r in page] for page in pages]
    return [b"\x00" + joined_entry(at, kind, mid, detail) for page in pages for _, at, kind, mid, detail, _ in page]


async def breakdown(ledger: Ledger, keys: dict[str, Any], repeat: int) -> list[tuple[str, float]]:
    """(c): verify_log's stages on the same log, each timed alone (a page at a time, as verify runs them)."""
    s_read, pages = await best_of_async(repeat, lambda: read_raw(ledger))
    s_cps, signed = await best_of_async(repeat, lambda: checkpoints(ledger))

    def hashing() -> list[list[bytes]]:
        hasher = LeafHasher()
        return [hasher.leaves(rows) or [] for rows in pages]

    s_hash, leaves = best_of(repeat, hashing)

    def tree() -> LogVerifier:
        verifier = LogVerifier(signed, keys)
        for page in leaves:
            verifier.tree.extend(page)
        return verifier

    s_tree, verifier = best_of(repeat, tree)

    def recording() -> list[list[Entry]]:
        fresh = LogVerifier([], keys)
        return [fresh.add_rows(rows) or [] for rows in pages]

    s_rec, recorded = best_of(repeat, recording)
    s_finish, _ = best_of(repeat, verifier.finish)
    s_sig, _ = best_of(
        repeat, lambda: [verify_signature(keys[cp.key_id], cp.statement(), b64decode(cp.signature)) for cp in signed]
    )

    async def stored_copies() -> Report:
        checker = CopyChecker(ledger, Report())
        for page in recorded:
            await checker.add(page)
        return await checker.finish()

    s_copies, _ = await best_of_async(repeat, stored_copies)
    first = min(FALLBACK_SAMPLE, sum(map(len, pages)))
    sample = await ledger.entries_between(1, first)
    s_canon, _ = best_of(repeat, lambda: [e.canonical() for e in sample])
    return [
        ("read raw rows from the ledger (raw_entry_pages)", s_read),
        ("read checkpoints", s_cps),
        ("leaf hashes: join columns, SHA-256, compare (LeafHasher)", s_hash),
        ("tree frontier, roots, consistency proofs (TreeHeads)", s_tree),
        ("entries recording copies: parse detail and time", max(0.0, s_rec - s_hash - s_tree)),
        ("checkpoints: signatures, roots, consistency", s_finish),
        ("  of which Ed25519 signature checks", s_sig),
        ("stored copies: look-ups, SHA-256 (CopyChecker)", s_copies),
        (f"  not run: for {first:,}, canonical bytes (RFC 8785 JSON, Entry.canonical)", s_canon),
    ]


_CHILD = """
import asyncio, json, resource, sys, time
from pathlib import Path
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.audit.verify import verify_log
from mash_broker.core.messages import GATE_ORG
from mash_broker.storage import Ledger

async def main():
    url, search_path, keys_dir = sys.argv[1:4]
    kw = {"connect_args": {"server_settings": {"search_path": search_path}}} if search_path else {}
    ledger = await Ledger.open(url, **kw)
    try:
        t0 = time.perf_counter()
        report = await verify_log(ledger, KeyStore(Path(keys_dir)).public_keys(GATE_ORG))
        seconds = time.perf_counter() - t0
    finally:
        await ledger.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ok": report.ok, "entries": report.entries, "seconds": seconds, "max_rss_kb": rss}))

asyncio.run(main())
"""


async def verify_in_child(ledger: Ledger, keys_dir: Path) -> dict[str, Any]:
    """``verify_log`` alone in a new process (imports and opening the ledger not timed): its time and peak RSS."""
    url = ledger.engine.url.render_as_string(hide_password=False)
    search_path = ""
    if ledger.engine.dialect.name == "postgresql":
        async with ledger.engine.connect() as conn:
            search_path = str((await conn.execute(text("SHOW search_path"))).scalar_one())
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CHILD, url, search_path, str(keys_dir)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MASH_LOG_LEVEL": "WARNING"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"verify in a new process exited {done.returncode}: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def time_cli(data_dir: Path, repeat: int) -> tuple[float, dict[str, Any]]:
    """`mash audit verify --json` in a new process, against the SQLite ledger in ``data_dir``."""
    mash = Path(sys.executable).with_name("mash")
    cmd = [str(mash)] if mash.exists() else [sys.executable, "-c", "from mash_broker.app.cli import main; main()"]
    env = {**os.environ, "MASH_DATA_DIR": str(data_dir), "MASH_LOG_LEVEL": "WARNING"}
    env.pop("MASH_DATABASE_URL", None)

    def once() -> dict[str, Any]:
        done = subprocess.run([*cmd, "audit", "verify", "--json"], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mash audit verify exited {done.returncode}: {done.stderr.strip()[:500]}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return best_of(repeat, once)


# -- the run ------------------------------------------------------------------------------------------


@asynccontextmanager
async def fresh_ledger(url: str | None, data_dir: Path) -> AsyncIterator[Ledger]:
    if url:
        async with postgres_ledger(url) as ledger:
            yield ledger
    else:
        async with sqlite_ledger(data_dir) as ledger:
            yield ledger


async def main_async(args: argparse.Namespace) -> Report:
    n, every, repeat = args.entries, args.checkpoint_every, args.repeat
    where = "PostgreSQL (fresh schema)" if args.url else "SQLite (temporary folder)"
    print(f"N = {n:,} entries, a signed checkpoint every {every:,}; ledger: {where}; best of {repeat}", flush=True)
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mash-bench-audit-") as tmp:
        data_dir = Path(tmp)
        keys_dir = data_dir / "keys"  # Settings(data_dir=tmp).keys_dir: where `mash audit verify` looks
        async with fresh_ledger(args.url, data_dir) as ledger:
            t0 = time.perf_counter()
            signed = await build_log(ledger, keys_dir, n, every, old_append=args.old_append)
            print(
                f"built the log: {n:,} entries and {signed} checkpoints in {time.perf_counter() - t0:.1f} s", flush=True
            )

            # (a) exactly what `mash audit verify` does: the gate's keys from the key store, then verify_log.
            trusted = KeyStore(keys_dir).public_keys(GATE_ORG)
            s_verify, found = await best_of_async(repeat, lambda: verify_log(ledger, trusted))
            report: Report = found
            if not report.ok:
                raise RuntimeError(f"verify failed on the synthetic log: {report.problems[0]}")
            verify = Rate("(a) verify_log (what `mash audit verify` runs)", "verify_log", report.entries, s_verify)
            print(verify.line(), flush=True)
            print(
                f"    verify OK: {report.entries:,} entries, {report.checkpoints} checkpoints, "
                f"newest covers {report.covered:,}",
                flush=True,
            )
            print(
                f"    stored copies checked against their recorded hashes: {report.copies:,} "
                f"(messages, deliveries, outbox records); with no recorded hash: {report.unrecorded or 'none'}",
                flush=True,
            )
            rates = [verify]
            if not args.url and not args.no_cli:
                s_cli, result = time_cli(data_dir, repeat)
                if not result["ok"] or result["entries"] != n:
                    raise RuntimeError(f"mash audit verify did not verify the log: {result}")
                rates.append(Rate("(a) `mash audit verify --json`, whole command", "whole command", n, s_cli))
                print(rates[-1].line(), flush=True)
            child = await verify_in_child(ledger, keys_dir)
            if not child["ok"] or child["entries"] != n:
                raise RuntimeError(f"verify in a new process did not verify the log: {child}")
            rss_mb = child["max_rss_kb"] / 1024
            rates.append(Rate("(a) verify_log in a new process of its own", "own process", n, child["seconds"]))
            print(f"{rates[-1].line()}, peak RSS {rss_mb:,.0f} MB", flush=True)

            leaves = plain_leaves(await read_raw(ledger), old_append=args.old_append)
            leaf_b, tree_b, stream_b, root = plain_sha256(leaves, repeat)
            del leaves
            if signed and n % every == 0 and root.hex() != (await checkpoints(ledger))[-1].root_hash:
                raise RuntimeError("plain SHA-256 tree root differs from the signed root")
            for r in (leaf_b, tree_b, stream_b):
                print(r.line(), flush=True)
            mean = leaf_b.nbytes / n
            print(f"    leaf bytes: {leaf_b.nbytes / 1e6:.1f} MB, {mean:.0f} B per entry on average", flush=True)
            for r in rates:
                for p in (leaf_b, tree_b):
                    print(
                        f"ratio {r.short} / plain SHA-256 {p.short}: {r.per_s / p.per_s:.4f} "
                        f"(plain is {p.per_s / r.per_s:,.0f}x faster)",
                        flush=True,
                    )
            summary = [
                f"summary: {r.short:<13} {r.per_s:>11,.0f} entries/s ({r.seconds:7.3f} s for {n:,}); ratio to plain "
                f"SHA-256 leaves + tree {r.per_s / tree_b.per_s:.3f}, per leaf {r.per_s / leaf_b.per_s:.3f}"
                for r in rates
            ]
            summary.append(f"summary: own process    peak RSS {rss_mb:,.0f} MB for {n:,} entries")

            if not args.no_breakdown:
                stages = await breakdown(ledger, trusted, repeat)
                total = sum(s for label, s in stages if not label.startswith(" "))
                print(
                    f"(c) where verify's time goes (stages timed alone; sum {total:.3f} s, "
                    f"verify_log {s_verify:.3f} s):",
                    flush=True,
                )
                for label, s in stages:
                    print(f"    {label:<52} {s:8.3f} s {100 * s / total:5.1f} %", flush=True)
            if args.profile:  # a run of its own: the profiler slows what it watches about twofold
                profile = cProfile.Profile()
                profile.enable()
                await verify_log(ledger, trusted)
                profile.disable()
                print_profile(profile, args.profile, "verify_log", top=20)
            print("\n".join(summary), flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES, help="log entries to build and verify")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_CHECKPOINT_EVERY,
        metavar="K",
        help="sign a checkpoint every K entries",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        help="PostgreSQL instead of SQLite, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--million", action="store_true", help="1,000,000 entries (the issue's figure)")
    parser.add_argument(
        "--old-append", action="store_true", help="write the entries as Tx.event did before details were canonical"
    )
    parser.add_argument("--repeat", type=int, default=3, help="time each measurement this many times, keep the best")
    parser.add_argument("--no-cli", action="store_true", help="skip timing `mash audit verify` in a new process")
    parser.add_argument("--no-breakdown", action="store_true", help="skip (c), the stage-by-stage times")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile one more run of verify_log and print the top functions"
    )
    args = parser.parse_args(argv)
    if args.million:
        args.entries = 1_000_000
    if args.entries < 1 or args.checkpoint_every < 1 or args.repeat < 1:
        parser.error("--entries, --checkpoint-every and --repeat must be at least 1")
    configure_logging("WARNING", json=False)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
