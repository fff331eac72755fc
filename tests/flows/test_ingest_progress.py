"""`police ingest` waits on the gate's progress, not a fixed time (issue 13).

A gate slower than one receipt timeout for the whole file still gets every row answered, with each row
sent once: ingest keeps waiting while receipts keep arriving. A row the gate lost is sent again once
receipts stop arriving for the timeout, and only that row: none the gate has recorded is sent twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import publish_rows
from mash_broker.contracts import Envelope
from mash_broker.core.messages import content_hash, encode

from .conftest import Flow

ROWS = 20
# Per record: the file takes 2.4 s to record, well over twice the receipt timeout. The timeout is wide of the
# gap between two receipts (the delay plus one record's handling) so a loaded machine cannot fake a stall.
GATE_DELAY_S = 0.12
TIMEOUT_S = 1.0


class SlowGate:
    """The real gate behind a queue that records one message every ``delay_s``; the first send of each
    message id in ``lose`` never reaches it (a record lost on the way)."""

    def __init__(self, flow: Flow, delay_s: float, lose: set[str] | None = None) -> None:
        self.flow, self.delay_s, self.lose = flow, delay_s, set(lose or ())
        self.sent: Counter[str] = Counter()
        self.queue: asyncio.Queue[tuple[str, bytes, bytes, dict[str, str]]] = asyncio.Queue()

    async def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        hdrs = {k: v.decode() for k, v in headers}
        mid = hdrs["message-id"]
        self.sent[mid] += 1
        if mid in self.lose and self.sent[mid] == 1:
            return
        self.queue.put_nowait((topic, key, value, hdrs))

    async def run(self) -> None:
        while True:
            topic, key, value, hdrs = await self.queue.get()
            await asyncio.sleep(self.delay_s)
            await self.flow.broker.publish(value, topic, key=key, headers=hdrs)


def rows(notification: Callable[..., Envelope], n: int) -> list[ParsedRow]:
    return [ParsedRow(i + 2, notification(reference=f"SLOW/2026/{i:04d}")) for i in range(n)]


async def warm(flow: Flow, notification: Callable[..., Envelope]) -> None:
    """One record through the gate first, so the first row's wait is not its first-use cost (imports,
    statement caches, the ledger's first write): that is not the slowness this test is about."""
    env = notification(reference="SLOW/2026/WARM")
    await flow.send(encode(env).encode())
    assert await flow.ledger.receipts_for_content({str(env.message_id): content_hash(env)})


async def ingest(gate: SlowGate, parsed: list[ParsedRow], notification: Callable[..., Envelope]) -> Counter[str]:
    await warm(gate.flow, notification)
    task = asyncio.create_task(gate.run())
    try:
        receipts = await publish_rows(
            parsed, ledger=gate.flow.ledger, send=gate.send, timeout_s=TIMEOUT_S, attempts=3, poll_s=0.01
        )
    finally:
        task.cancel()
    return Counter(r.status for r in receipts)


async def test_a_gate_slower_than_the_timeout_gets_every_row_accepted_each_sent_once(
    flow: Flow, notification: Callable[..., Envelope]
) -> None:
    parsed = rows(notification, ROWS)
    gate = SlowGate(flow, GATE_DELAY_S)
    assert await ingest(gate, parsed, notification) == {"accepted": ROWS}
    assert gate.sent == dict.fromkeys((str(r.envelope.message_id) for r in parsed), 1)


async def test_only_the_rows_the_gate_did_not_record_are_sent_again(
    flow: Flow, notification: Callable[..., Envelope]
) -> None:
    parsed = rows(notification, ROWS)
    lost = {str(r.envelope.message_id) for r in parsed[3:6]}
    gate = SlowGate(flow, GATE_DELAY_S, lose=lost)
    assert await ingest(gate, parsed, notification) == {"accepted": ROWS}
    assert gate.sent == {str(r.envelope.message_id): 2 if str(r.envelope.message_id) in lost else 1 for r in parsed}
