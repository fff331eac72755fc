"""Whose fault a failed record is (app.dead_letters): the infrastructure's is retried with a bounded
backoff, the record's parks it on the dead-letter topic; logs carry the error class only
(issue 11, problems 1 and 6)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from structlog.testing import capture_logs

from mash_broker.app.dead_letters import Failure, Received, RecordGuard, backoff, classify
from mash_broker.core.intake import DEAD_LETTERS

RECORD = Received(topic="police.notification.v1", partition=2, offset=41, key=b"k", headers=(("trace-id", b"t-1"),))


class _Child(BaseModel):
    name: int


def _validation_error() -> ValidationError:
    try:
        _Child.model_validate({"name": "Zebedee Quillfeather"})
    except ValidationError as err:
        return err
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (OperationalError("SELECT 1", {}, Exception("database is locked")), Failure.INFRASTRUCTURE),
        (KafkaConnectionError(), Failure.INFRASTRUCTURE),
        (ConnectionRefusedError(), Failure.INFRASTRUCTURE),
        (TimeoutError(), Failure.INFRASTRUCTURE),
        (DataError("INSERT", {}, Exception("NUL in text")), Failure.RECORD),
        (IntegrityError("INSERT", {}, Exception("duplicate")), Failure.RECORD),
        (RecursionError(), Failure.RECORD),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), Failure.RECORD),
        (ValueError("x"), Failure.RECORD),
        (KeyError("x"), Failure.RECORD),
        (_validation_error(), Failure.RECORD),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_the_ledger_or_the_broker_failing_is_retried(exc: BaseException, failure: Failure) -> None:
    assert classify(exc) is failure


def test_the_backoff_doubles_from_half_a_second_to_thirty() -> None:
    assert [backoff(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff(10_000) == 30


class Harness:
    def __init__(self) -> None:
        self.parked: list[tuple[bytes, str, bytes | None, dict[str, str]]] = []
        self.slept: list[float] = []

        async def publish(value: bytes, topic: str, key: bytes | None, headers: dict[str, str]) -> None:
            self.parked.append((value, topic, key, headers))

        async def sleep(s: float) -> None:
            self.slept.append(s)

        self.guard = RecordGuard("gate", publish, sleep=sleep)


def test_an_infrastructure_failure_is_retried_with_backoff_then_goes_on() -> None:
    h = Harness()
    failures = [OperationalError("SELECT 1", {}, Exception("locked"))] * 3

    async def work() -> None:
        if failures:
            raise failures.pop()

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(OperationalError):
                await h.guard.handle(RECORD, b"{}", work)  # re-raised: NACK_ON_ERROR hands it over again
        await h.guard.handle(RECORD, b"{}", work)

    asyncio.run(main())
    assert h.slept == [0.5, 1, 2]
    assert h.parked == []


def test_any_other_failure_parks_the_record_with_its_error_class_and_headers() -> None:
    h = Harness()

    async def work() -> None:
        raise _validation_error()

    with capture_logs() as logs:
        asyncio.run(h.guard.handle(RECORD, b'{"name": "Zebedee Quillfeather"}', work))

    [(value, topic, key, headers)] = h.parked
    assert (value, topic, key) == (b'{"name": "Zebedee Quillfeather"}', DEAD_LETTERS, b"k")
    assert headers == {
        "trace-id": "t-1",
        "dead-letter-reason": "handler_error",
        "dead-letter-detail": "ValidationError",
        "dead-letter-subscriber": "gate",
        "dead-letter-source-topic": "police.notification.v1",
        "dead-letter-partition": "2",
        "dead-letter-offset": "41",
    }
    assert h.slept == []
    text = json.dumps(logs, default=str)
    assert "Quillfeather" not in text, "no input value in any log line"
    assert "exc_info" not in text
    assert [e["event"] for e in logs] == ["record.handler_failed", "record.parked"]


def test_a_dead_letter_the_broker_refuses_is_retried_not_lost() -> None:
    h = Harness()

    async def refuse(value: bytes, topic: str, key: bytes | None, headers: dict[str, str]) -> None:
        raise MessageSizeTooLargeError()

    h.guard.publish = refuse

    async def work() -> None:
        raise RecursionError

    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(h.guard.handle(RECORD, b"[[", work))
    assert h.slept == [0.5]


def test_a_parked_value_is_cut_to_what_the_producer_takes(tmp_path: Any) -> None:
    h = Harness()
    asyncio.run(h.guard.park(RECORD, b"x" * 1_500_000, "message_too_large", "1500000 bytes"))
    [(value, _, _, headers)] = h.parked
    assert len(value) == 1_000_000
    assert headers["dead-letter-original-bytes"] == "1500000"
