"""The gate at the transport's pace (issue 13): every figure of the issue as a ratio to its target, in one run.

    .venv/bin/python -m bench.transport_pace                          # defaults: about 4 minutes here
    .venv/bin/python -m bench.transport_pace --morning 2000,10000     # the issue's two mornings (10,000: ~10 min today)
    .venv/bin/python -m bench.transport_pace --replay 100000 --ingest-mb 50 --up-messages 20000   # the issue's sizes
    .venv/bin/python -m bench.transport_pace --url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres  # + PostgreSQL
    .venv/bin/python -m bench.transport_pace --only relay,morning --profile /tmp/gate.prof

One embedded (tansu) broker for the whole run. Figures (``--only`` picks some):

relay    the transport's limit: a batched aiokafka relay A -> B (bench._relay) beside the per-message
         FastStream relay of bench.gate_throughput, on 1.4 kB signed envelopes.
morning  `mash police ingest` (a subprocess, as an operator runs it) of an N-row export, against the gate,
         school inboxes and relay in this process on a fresh ledger (SQLite; also PostgreSQL with --url), timed
         from the ingest's start until every delivery is recorded at the school inbox (the ledger's
         delivered_at), after a one-row warm-up; its exit code, counts and copies sent. The first size is
         the gate end to end figure, as a ratio to the batched relay.
replay   `mash replay --dry-run` and the real replay of N messages recorded through the gate's own handler.
memory   peak RSS of `mash police ingest` of a large export (no gate running: it sends, then gives up after
         1 s without a receipt) and of `mash up` over a ledger of N messages (its audited entries counted).
inbox    server time of GET /inbox for one school holding N notifications, through the web app in process
         (httpx over ASGI), best and median of 7.

Each figure ends as one ``summary:`` line with its ratio or target. Not a test: nothing fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import shutil
import statistics
import tempfile
from pathlib import Path

from bench import _figures
from bench._common import machine, print_profile
from bench._relay import batched_relay
from bench._stack import BenchArea
from bench.gate_throughput import bench_bare
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.embedded import EmbeddedBroker
from mash_broker.app.kafka import ensure_topics
from mash_broker.core.logging import configure_logging

FIGURES = ("relay", "morning", "replay", "memory", "inbox")


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


async def main_async(args: argparse.Namespace) -> None:
    only = set(args.only.split(",")) if args.only else set(FIGURES)
    profile = cProfile.Profile() if args.profile else None
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mash-pace-") as tmp:
        root = Path(tmp)
        main = BenchArea(root / "main", args.schools)
        print(f"machine: {machine()}", flush=True)
        configure_logging("WARNING", json=False)
        async with contextlib.AsyncExitStack() as stack:
            bootstrap = ""
            if only - {"inbox"}:  # the inbox page needs no broker
                bootstrap = await stack.enter_async_context(EmbeddedBroker(main.data_dir))
                await ensure_topics(bootstrap, REGISTRY.all_topics)
            broker_file = main.data_dir / "broker.json"

            def area(name: str, schools: int = args.schools, url: str | None = None) -> BenchArea:
                a = BenchArea(root / name, schools, url)
                if broker_file.exists():
                    shutil.copy(broker_file, a.data_dir / "broker.json")  # its `mash` commands find this broker
                return a

            relay_rate = None
            if "relay" in only or "morning" in only:
                warm, recs = main.signed(1, "warm-relay")[0], main.signed(args.relay_messages, "relay")
                sizes = [len(r.value) for r in recs]
                print(f"relay: {len(recs)} signed envelopes of {statistics.mean(sizes):.0f} B mean", flush=True)
                seconds = await batched_relay(bootstrap, warm, recs)
                relay_rate = len(recs) / seconds
                print(f"  batched relay A -> B: {len(recs)} in {seconds:.2f} s = {relay_rate:,.0f} msgs/s", flush=True)
                if "relay" in only:
                    few = recs[: args.per_message]
                    bare = await bench_bare(bootstrap, warm, few)
                    print(f"  per-message FastStream relay: {bare.line().split('  ')[-1].strip()}", flush=True)
                    summary.append(
                        f"per_message_relay/batched_relay = {bare.per_s / relay_rate:.3f} "
                        f"({bare.per_s:,.0f} vs {relay_rate:,.0f} msgs/s; the old bench's baseline)"
                    )
            if "morning" in only:
                assert relay_rate is not None
                backends: list[tuple[str, str | None]] = [("SQLite", None)]
                if args.url:
                    backends.append(("PostgreSQL", args.url))
                for label, url in backends:
                    for i, rows in enumerate(_sizes(args.morning)):
                        async with _figures.database(url) as db_url:
                            a = area(f"morning-{label}-{rows}", url=db_url)
                            m = await _figures.morning(a, bootstrap, rows, profile if label == "SQLite" else None)
                        summary += m.lines(label)
                        if i == 0:
                            summary.append(
                                f"gate_e2e/batched_relay [{label}, {rows} rows] = {m.rate / relay_rate:.4f} "
                                f"({m.rate:,.1f} vs {relay_rate:,.0f} msgs/s; target >= 0.25)"
                            )
            if "replay" in only:
                summary += await _figures.replay(area("replay"), args.replay)
            if "memory" in only:
                summary += await _figures.ingest_memory(area("ingest-memory"), args.ingest_mb)
                summary += await _figures.up_memory(BenchArea(root / "up-memory", args.schools), args.up_messages)
            if "inbox" in only:
                summary += await _figures.inbox(area("inbox", schools=1), args.inbox)
    print(f"\nmachine: {machine()}")
    for line in summary:
        print(f"summary: {line}")
    if profile:
        print_profile(profile, args.profile, "the gate during the morning (SQLite)", top=args.profile_top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated figures out of {','.join(FIGURES)} (default all)")
    parser.add_argument("--relay-messages", type=int, default=5_000, help="records through the batched relay")
    parser.add_argument("--per-message", type=int, default=300, help="records through the per-message relay")
    parser.add_argument("--morning", default="2000", help="rows of each morning, comma-separated (e.g. 2000,10000)")
    parser.add_argument("--url", help="also run the mornings on PostgreSQL (a fresh database on this server)")
    parser.add_argument("--replay", type=int, default=2_000, help="recorded messages to replay (issue: 100000)")
    parser.add_argument("--ingest-mb", type=float, default=5.0, help="size of the export for ingest's RSS (issue: 50)")
    parser.add_argument("--up-messages", type=int, default=2_000, help="messages in the ledger for mash up's RSS")
    parser.add_argument("--inbox", type=int, default=5_000, help="notifications in the school's inbox")
    parser.add_argument("--schools", type=int, default=300, help="schools in the directory")
    parser.add_argument("--profile", metavar="FILE", help="cProfile this process (the gate) during the mornings")
    parser.add_argument("--profile-top", type=int, default=25, help="functions to print from the profile")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
