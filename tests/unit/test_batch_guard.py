"""A batch through ``RecordGuard.handle_batch`` (issue 13): the infrastructure failing retries the whole batch;
a record's fault handles the batch again record by record, so only that record is parked."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy.exc import OperationalError

from mash_broker.app.dead_letters import Received, RecordGuard
from mash_broker.core.intake import DEAD_LETTERS

FIRST = Received(topic="police.notification.v1", partition=0, offset=10, key=b"k", headers=())
RECORDS = [replace(FIRST, offset=10 + i) for i in range(3)]
BODIES = [b"a", b"b", b"c"]


class Harness:
    def __init__(self) -> None:
        self.parked: list[tuple[bytes, str, dict[str, str]]] = []
        self.slept: list[float] = []
        self.alone: list[int] = []

        async def publish(value: bytes, topic: str, key: bytes | None, headers: dict[str, str]) -> None:
            self.parked.append((value, topic, headers))

        async def sleep(s: float) -> None:
            self.slept.append(s)

        self.guard = RecordGuard("gate", publish, sleep=sleep)

    async def one(self, i: int) -> None:
        if BODIES[i] == b"b":
            raise ValueError("this record's fault")
        self.alone.append(i)


def test_a_batch_that_commits_is_not_handled_again() -> None:
    h = Harness()
    ran: list[str] = []

    async def together() -> None:
        ran.append("batch")

    asyncio.run(h.guard.handle_batch(RECORDS, BODIES, together, h.one))
    assert (ran, h.alone, h.parked, h.slept) == (["batch"], [], [], [])


def test_an_infrastructure_failure_retries_the_whole_batch_and_handles_none_alone() -> None:
    h = Harness()

    async def together() -> None:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(OperationalError):  # re-raised: NACK_ON_ERROR rewinds the batch
                await h.guard.handle_batch(RECORDS, BODIES, together, h.one)

    asyncio.run(main())
    assert h.slept == [0.5, 1]
    assert (h.alone, h.parked) == ([], [])


def test_a_records_fault_parks_that_record_alone_and_the_others_go_through_in_order() -> None:
    h = Harness()

    async def together() -> None:
        raise ValueError("some record of the batch")

    asyncio.run(h.guard.handle_batch(RECORDS, BODIES, together, h.one))
    assert h.alone == [0, 2]
    [(value, topic, headers)] = h.parked
    assert (value, topic, headers["dead-letter-offset"], headers["dead-letter-reason"]) == (
        b"b",
        DEAD_LETTERS,
        "11",
        "handler_error",
    )
    assert h.slept == []
