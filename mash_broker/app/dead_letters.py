"""When handling one record fails: the record's fault parks it, the infrastructure's is retried.

Every subscriber (the gate, each agency's inbox) runs its work for a record, or for a batch of records
(``handle_batch``: one transaction for the batch; if a record's fault fails it, each record alone), through a
``RecordGuard``:

- a record nothing can act on (unreadable, or one whose handling raised anything that is not an
  infrastructure failure) is parked on ``gate.deadletter.v1``, as it was sent, with its original headers
  and ``dead-letter-*`` headers saying why and where it came from; the records behind it go on;
- an infrastructure failure (the ledger or the broker: ``classify``) is retried with exponential backoff
  (``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S``) for as long as it lasts: the record is not at fault,
  and the records behind it would fail the same way (docs/architecture.md, "Failure modes").

Logs carry the error's class, never its message or traceback: a pydantic error quotes its input.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiokafka.errors import KafkaError
from sqlalchemy import exc as sa

from mash_broker.core.intake import DEAD_LETTERS
from mash_broker.core.logging import get_logger

log = get_logger("mash.app")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
LOUD_AFTER = 5  # attempts: from then on each failed attempt is logged as an error, for a person to see
HANDLER_ERROR = "handler_error"
MAX_PARKED_BYTES = 1_000_000  # a parked value fits the producer's request limit with its headers


class Failure(StrEnum):
    """Whose fault a failed attempt was."""

    INFRASTRUCTURE = "infrastructure"  # the ledger or the broker: retried
    RECORD = "record"  # this record: parked


def classify(exc: BaseException) -> Failure:
    """Only the ledger or the broker failing is the infrastructure's fault. A value the database refuses
    (``DataError``) or a row someone else already wrote (``IntegrityError``) is this record's."""
    if isinstance(exc, sa.DataError | sa.IntegrityError):
        return Failure.RECORD
    if isinstance(exc, sa.DBAPIError | sa.TimeoutError | sa.DisconnectionError | KafkaError | OSError | TimeoutError):
        return Failure.INFRASTRUCTURE
    return Failure.RECORD


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, ...): 0.5, 1, 2, ... up to 30."""
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(attempt - 1, 16)))


@dataclass(frozen=True, slots=True)
class Received:
    """Where a record came from, and what it carried besides its value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, raw_message: Any) -> Received:
        record = raw_message[0] if isinstance(raw_message, tuple) else raw_message
        return cls(
            topic=str(record.topic),
            partition=int(record.partition),
            offset=int(record.offset),
            key=record.key,
            headers=tuple((str(k), bytes(v or b"")) for k, v in (record.headers or ())),
        )


Publish = Callable[[bytes, str, bytes | None, dict[str, str]], Awaitable[None]]


@dataclass
class RecordGuard:
    """One subscriber's handling of failures (``subscriber``: ``gate``, ``education-inbox``...)."""

    subscriber: str
    publish: Publish
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        self._attempts: dict[tuple[str, int, int], int] = {}

    async def handle(self, record: Received, body: bytes, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work``; park the record if it fails by its own fault; re-raise after a backoff if the
        infrastructure failed (the subscriber's NACK_ON_ERROR then hands the same record over again)."""
        where = (record.topic, record.partition, record.offset)
        try:
            await work()
        except Exception as exc:  # classified below: nothing escapes unjudged
            if classify(exc) is Failure.INFRASTRUCTURE:
                await self._retry_later(record, where, exc)
                raise
            self._attempts.pop(where, None)
            log.error(
                "record.handler_failed",
                subscriber=self.subscriber,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=type(exc).__name__,
            )
            try:
                await self.park(record, body, HANDLER_ERROR, type(exc).__name__)
            except Exception as failed:  # the broker refused the dead letter: try the record again later
                await self._retry_later(record, where, failed)
                raise
        else:
            self._attempts.pop(where, None)

    async def handle_batch(
        self,
        records: Sequence[Received],
        bodies: Sequence[bytes],
        together: Callable[[], Awaitable[None]],
        alone: Callable[[int], Awaitable[None]],
    ) -> None:
        """Run ``together`` (the whole batch, in one ledger transaction). If the infrastructure failed, back
        off and re-raise (NACK_ON_ERROR then rewinds every partition of the batch, and it comes again). If
        a record's fault failed it (nothing of the batch was recorded), handle each record ``alone``, in
        order, as ``handle`` does: the offending record alone is parked, the rest go through."""
        if not records:
            return
        first = records[0]
        where = (first.topic, first.partition, first.offset)
        try:
            await together()
        except Exception as exc:  # classified below: nothing escapes unjudged
            if classify(exc) is Failure.INFRASTRUCTURE:
                await self._retry_later(first, where, exc)
                raise
            self._attempts.pop(where, None)
            log.warning(
                "batch.handled_alone",
                subscriber=self.subscriber,
                topic=first.topic,
                partition=first.partition,
                offset=first.offset,
                records=len(records),
                error=type(exc).__name__,
            )
            for i, (record, body) in enumerate(zip(records, bodies, strict=True)):
                await self.handle(record, body, functools.partial(alone, i))
        else:
            self._attempts.pop(where, None)

    async def _retry_later(self, record: Received, where: tuple[str, int, int], exc: Exception) -> None:
        if len(self._attempts) > 1000:  # positions left behind by a rebalance: forget them
            self._attempts.clear()
        attempt = self._attempts[where] = self._attempts.get(where, 0) + 1
        delay = backoff(attempt)
        emit = log.error if attempt >= LOUD_AFTER else log.warning
        emit(
            "record.infrastructure_failed",
            subscriber=self.subscriber,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=type(exc).__name__,
            attempt=attempt,
            retry_in_s=delay,
        )
        await self.sleep(delay)

    async def park(self, record: Received, body: bytes, reason: str, detail: str) -> None:
        """Put the record, as it was sent, on the dead-letter topic with why and where from."""
        headers = {k: v.decode("utf-8", errors="replace") for k, v in record.headers}
        headers.update(
            {
                "dead-letter-reason": reason,
                "dead-letter-detail": detail[:1000],
                "dead-letter-subscriber": self.subscriber,
                "dead-letter-source-topic": record.topic,
                "dead-letter-partition": str(record.partition),
                "dead-letter-offset": str(record.offset),
            }
        )
        if len(body) > MAX_PARKED_BYTES:
            headers["dead-letter-original-bytes"] = str(len(body))
        await self.publish(body[:MAX_PARKED_BYTES], DEAD_LETTERS, record.key, headers)
        log.warning(
            "record.parked",
            subscriber=self.subscriber,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
