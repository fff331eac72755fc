"""The transport's limit: a batched aiokafka relay A -> B on the same broker the gate runs on.

As shared/KAFKA-NOTES.md measured it: ``getmany`` up to 1,000 records, ``send`` each without waiting,
one ``flush`` and one offset ``commit`` per batch, ``acks="all"`` (the producer police ingest uses).
Timed from the first send to A until every record has been consumed from B (a counting consumer in a
fresh group), after a warm-up record has gone all the way through, so group joins are not timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiokafka import AIOKafkaConsumer

from bench._kafka import CountingConsumer, send_all, start_producer
from bench._synthetic import Record
from mash_broker.app.kafka import ensure_topics

BATCH = 1_000


async def _relay(consumer: AIOKafkaConsumer, prod: object, dst: str) -> None:
    send = prod.send  # type: ignore[attr-defined]
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
        if not batches:
            continue
        for records in batches.values():
            for r in records:
                await send(dst, value=r.value, key=r.key, headers=list(r.headers))
        await prod.flush()  # type: ignore[attr-defined]
        await consumer.commit()


async def batched_relay(bootstrap: str, warm: Record, recs: list[Record], timeout_s: float = 120.0) -> float:
    """Seconds to move ``recs`` A -> B through the batched relay."""
    run = uuid.uuid4().hex[:8]
    src, dst = f"bench.batched-in.{run}", f"bench.batched-out.{run}"
    await ensure_topics(bootstrap, (src, dst))
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=f"bench-batched-{run}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    counter = CountingConsumer(bootstrap, dst)
    relay_prod, prod = await start_producer(bootstrap), await start_producer(bootstrap)
    await asyncio.gather(consumer.start(), counter.start())
    task = asyncio.create_task(_relay(consumer, relay_prod, dst))
    try:
        await send_all(prod, src, [warm])
        await counter.reached(1, timeout_s)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await send_all(prod, src, recs)
        return await counter.reached(1 + len(recs), timeout_s) - t0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await counter.stop()
        await consumer.stop()
        await relay_prod.stop()
        await prod.stop()
