"""aiokafka pieces for the benchmarks: a counting consumer that knows when it is assigned, and a producer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from bench._synthetic import Record
from mash_broker.app.kafka import producer_kwargs


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.event.set()


class CountingConsumer:
    """Counts distinct records on ``topic`` (by ``message-id`` header, else offset), in a fresh group.

    With ``correlation_ids`` given, only records whose ``correlation-id`` header is one of them count:
    a topic that earlier runs wrote to can be read from the beginning without counting their records.
    """

    def __init__(self, bootstrap: str, topic: str, correlation_ids: Collection[bytes] | None = None) -> None:
        self.topic = topic
        self.group = f"bench-{uuid.uuid4().hex[:12]}"
        self.wanted = set(correlation_ids) if correlation_ids is not None else None
        self.seen: set[bytes | tuple[int, int]] = set()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=self.group, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self._listener = _Assigned()
        self._waiters: list[tuple[int, asyncio.Future[float]]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        return len(self.seen)

    def add_wanted(self, correlation_ids: Collection[bytes]) -> None:
        if self.wanted is not None:
            self.wanted.update(correlation_ids)

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start consuming and return once the group has assigned this consumer its partitions."""
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=self._listener)
        self._task = asyncio.create_task(self._run(), name=f"count-{self.topic}")
        await asyncio.wait_for(self._listener.event.wait(), timeout_s)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                for r in records:
                    headers = dict(r.headers)
                    if self.wanted is not None and headers.get("correlation-id") not in self.wanted:
                        continue
                    self.seen.add(headers.get("message-id") or (r.partition, r.offset))
            if batches and self._waiters:
                now, n = loop.time(), len(self.seen)
                for target, fut in self._waiters:
                    if n >= target and not fut.done():
                        fut.set_result(now)
                self._waiters = [(t, f) for t, f in self._waiters if not f.done()]

    async def reached(self, target: int, timeout_s: float) -> float:
        """Loop time at which ``target`` distinct records had been consumed."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self.count >= target:
            fut.set_result(asyncio.get_running_loop().time())
        else:
            self._waiters.append((target, fut))
        return await asyncio.wait_for(fut, timeout_s)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


async def start_producer(bootstrap: str) -> AIOKafkaProducer:
    """The producer police ingest uses (``broker.kafka.producer_kwargs``: acks=all, linger 5 ms)."""
    prod = AIOKafkaProducer(**producer_kwargs(bootstrap, embedded=True))
    await prod.start()
    return prod


async def send_all(prod: AIOKafkaProducer, topic: str, recs: list[Record]) -> None:
    """Send every record without waiting for each one, then wait for all the acks."""
    futures = [await prod.send(topic, value=r.value, key=r.key, headers=r.headers) for r in recs]
    await asyncio.gather(*futures)
