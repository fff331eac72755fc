"""Throughput of the consent gate against a bare FastStream relay, on one embedded (tansu) broker.

    .venv/bin/python bench/gate_throughput.py [--messages N] [--postgres URL] [--profile FILE]

(a) bare relay: a FastStream subscriber on topic A republishes each record unchanged to topic B;
    N records go to A with aiokafka; timed from the first send until N are consumed from B.
(b) gate: the real services (``broker.app.build_services``, fresh ledger, a school directory so every
    notification is shared); the same N envelopes go to ``police.notification.v1``; timed from the first
    send until N deliveries are consumed from ``education.delivery.v1``, and until the school-inbox
    subscriber has marked all N delivered in the ledger. With ``--postgres`` (b) runs again on PostgreSQL,
    in a fresh schema that is dropped afterwards.

Every consumer group is fresh and reads from the earliest offset; each measurement starts only after a
warm-up record has gone all the way through, so group joins (about 5 s on tansu) are not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from bench._common import machine, postgres_ledger, print_profile, sqlite_ledger
from bench._kafka import CountingConsumer, send_all, start_producer
from bench._synthetic import Record, envelopes, records, school_directory, school_urns
from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import build_broker, build_services
from mash_broker.app.embedded import EmbeddedBroker
from mash_broker.app.kafka import ensure_topics
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore
from mash_broker.core.logging import configure_logging
from mash_broker.core.settings import Settings
from mash_broker.core.signing import ensure_gate_key, ensure_key, sign
from mash_broker.storage import Ledger

DEFAULT_MESSAGES = 400
DEFAULT_SCHOOLS = 300  # a large local authority's directory; every notification names one of them
LEDGER_POLL_S = 0.02
POLICE_ORG = "police:benchpolice"  # the force bench._synthetic's export names


@dataclass
class Rate:
    label: str
    short: str
    n: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.n / self.seconds

    def line(self) -> str:
        return f"{self.label:<52} {self.n:>6} in {self.seconds:7.2f} s = {self.per_s:8.0f} msgs/s"


def _timeout(n: int) -> float:
    return 60.0 + n / 20


async def _raw_body(msg: Any) -> bytes:
    """The decoder the gate uses (broker.app._raw_body): hand the handler the bytes as sent."""
    return bytes(msg.body)


# -- (a) the bare relay ---------------------------------------------------------------------------


async def bench_bare(
    bootstrap: str,
    warm: Record,
    recs: list[Record],
    *,
    linger_ms: int | None = None,
    ack_policy: AckPolicy = AckPolicy.NACK_ON_ERROR,
) -> Rate:
    """By default the gate's client settings (build_broker: acks=all, linger 5 ms) and ack policy
    (NACK_ON_ERROR: an offset commit per message); the variants change one or both."""
    run = uuid.uuid4().hex[:8]
    src, dst = f"bench.bare-in.{run}", f"bench.bare-out.{run}"
    await ensure_topics(bootstrap, (src, dst))
    if linger_ms is None:
        broker = build_broker(bootstrap, embedded=True)
        label = "(a) bare FastStream relay A -> B"
    else:
        broker = KafkaBroker(bootstrap, acks="all", linger_ms=linger_ms, client_id="bench", logger=None)
        label = f"(a') bare relay, linger {linger_ms} ms, {ack_policy.name.lower()}"
    out = broker.publisher(dst)

    @broker.subscriber(
        src, group_id=f"bench-relay-{run}", auto_offset_reset="earliest", ack_policy=ack_policy, decoder=_raw_body
    )
    async def relay(body: bytes, msg: KafkaMessage) -> None:
        raw = msg.raw_message
        assert not isinstance(raw, tuple)  # a single-record subscriber, not a batch one
        await out.publish(body, key=raw.key, headers={k: v.decode() for k, v in raw.headers})

    counter = CountingConsumer(bootstrap, dst)
    prod = await start_producer(bootstrap)
    try:
        await asyncio.gather(counter.start(), broker.start())
        await send_all(prod, src, [warm])
        await counter.reached(1, _timeout(1))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await send_all(prod, src, recs)
        t1 = await counter.reached(1 + len(recs), _timeout(len(recs)))
        return Rate(label, "bare", len(recs), t1 - t0)
    finally:
        await counter.stop()
        await broker.stop()
        await prod.stop()


# -- (b) the gate -----------------------------------------------------------------------------------


async def _delivered(ledger: Ledger) -> int:
    return await ledger.delivered_count()


async def _ledger_reached(ledger: Ledger, target: int, timeout_s: float) -> float:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while (n := await _delivered(ledger)) < target:
        if loop.time() > end:
            raise TimeoutError(f"{n} of {target} delivered in the ledger after {timeout_s:g} s")
        await asyncio.sleep(LEDGER_POLL_S)
    return loop.time()


async def bench_gate(
    bootstrap: str,
    data_dir: Path,
    ledger: Ledger,
    label: str,
    schools: int,
    warm: Record,
    recs: list[Record],
    profile: cProfile.Profile | None = None,
) -> tuple[Rate, Rate]:
    now = datetime.now(UTC)
    async with ledger.transaction() as tx:
        await tx.replace_directory(school_directory(schools), now)
    settings = Settings(data_dir=data_dir)  # the ledger is passed in; settings give the clocks' defaults
    services = build_services(settings, ledger, build_broker(bootstrap, embedded=True))
    counter = CountingConsumer(
        bootstrap, EDUCATION_DELIVERIES, correlation_ids=[warm.correlation_id, *(r.correlation_id for r in recs)]
    )
    prod = await start_producer(bootstrap)
    try:
        await asyncio.gather(counter.start(), services.start())
        await send_all(prod, POLICE_NOTIFICATIONS, [warm])
        await counter.reached(1, _timeout(1))
        await _ledger_reached(ledger, 1, _timeout(1))
        n = len(recs)
        loop = asyncio.get_running_loop()
        if profile:
            profile.enable()
        t0 = loop.time()
        await send_all(prod, POLICE_NOTIFICATIONS, recs)
        t_out, t_led = await asyncio.gather(
            counter.reached(1 + n, _timeout(n)), _ledger_reached(ledger, 1 + n, _timeout(n))
        )
        if profile:
            profile.disable()
        if (got := await ledger.count("deliveries")) != 1 + n:
            raise RuntimeError(f"expected {1 + n} deliveries in the ledger, found {got}")
        return (
            Rate(f"(b) gate [{label}] out on {EDUCATION_DELIVERIES}", f"{label} out", n, t_out - t0),
            Rate(f"(b) gate [{label}] marked delivered in the ledger", f"{label} delivered", n, t_led - t0),
        )
    finally:
        await counter.stop()
        await services.stop()
        await prod.stop()


# -- the run ----------------------------------------------------------------------------------------


def police_key(data_dir: Path, now: datetime) -> Ed25519Signer:
    """The gate's key and the bench force's, in the registry the gate verifies with, as `mash keys new`
    makes them: the gate refuses unsigned envelopes, so the bench signs them as police ingest does."""
    settings, since = Settings(data_dir=data_dir), now - timedelta(hours=1)
    ensure_gate_key(settings, since)
    return ensure_key(KeyStore(settings.keys_dir), settings.key_registry_file, POLICE_ORG, since)


async def main_async(args: argparse.Namespace) -> None:
    n, now = args.messages, datetime.now(UTC)
    urns = school_urns(args.schools)
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="mash-bench-") as tmp:
        data_dir = Path(tmp)
        key = police_key(data_dir, now)

        def signed(count: int, tag: str) -> list[Record]:
            return records([sign(e, key) for e in envelopes(count, tag, now, urns)])

        warm, recs = signed(1, "warm-a")[0], signed(n, "a")
        sizes = [len(r.value) for r in recs]
        print(
            f"N = {n} messages; signed envelope JSON {statistics.mean(sizes):.0f} B mean "
            f"({min(sizes)}-{max(sizes)} B); {args.schools} schools in the directory",
            flush=True,
        )
        print(f"machine: {machine()}", flush=True)
        if args.log_level.upper() in ("DEBUG", "INFO"):  # count the logging cost, keep the terminal clear
            log_file = (data_dir / "bench.log").open("w")
            configure_logging(args.log_level, json=True, stream=log_file)
        else:
            configure_logging(args.log_level, json=False)
        async with EmbeddedBroker(data_dir / "tansu") as bootstrap:
            await ensure_topics(bootstrap, REGISTRY.all_topics)
            bare = await bench_bare(bootstrap, warm, recs)
            print(bare.line(), flush=True)
            results = [bare]
            if args.bare_variants:
                for ack in (AckPolicy.NACK_ON_ERROR, AckPolicy.ACK_FIRST):
                    print((await bench_bare(bootstrap, warm, recs, linger_ms=0, ack_policy=ack)).line(), flush=True)
            async with sqlite_ledger(data_dir) as ledger:
                out, led = await bench_gate(bootstrap, data_dir, ledger, "SQLite", args.schools, warm, recs, profile)
            print(out.line(), led.line(), sep="\n", flush=True)
            results += [out, led]
            if args.postgres:
                pg_warm, pg_recs = signed(1, "warm-pg")[0], signed(n, "pg")
                async with postgres_ledger(args.postgres) as ledger:
                    pg_out, pg_led = await bench_gate(
                        bootstrap, data_dir, ledger, "PostgreSQL", args.schools, pg_warm, pg_recs
                    )
                print(pg_out.line(), pg_led.line(), sep="\n", flush=True)
                results += [pg_out, pg_led]
        print("ratio gate/bare:", "; ".join(f"{r.short} {r.per_s / bare.per_s:.3f}" for r in results[1:]))
    if profile:
        print_profile(profile, args.profile, "the gate run (SQLite)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="messages per measurement")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run (b) on PostgreSQL, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--schools", type=int, default=DEFAULT_SCHOOLS, help="schools in the directory")
    parser.add_argument(
        "--bare-variants",
        action="store_true",
        help="also time the bare relay with linger_ms=0, with and without a commit per message",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the timed part of (b) on SQLite")
    parser.add_argument(
        "--log-level", default="WARNING", help="product log level; INFO and DEBUG are written as JSON to a temp file"
    )
    args = parser.parse_args()
    if args.messages < 1 or args.schools < 1:
        parser.error("--messages and --schools must be at least 1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
