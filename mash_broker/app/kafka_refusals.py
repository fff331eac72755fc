"""Kafka's refusals as one clear line: a topic an ACL refuses, credentials or a certificate refused.

aiokafka raises ``TopicAuthorizationFailedError(topic)`` from ``send`` when the principal may not write (or
even see) a topic, and only ``KafkaConnectionError("Unable to bootstrap ...")`` when every broker refused the
credentials, the reason going to its log. :func:`kafka_refusals` turns both into the broker's own errors,
naming the topic or the reason, so a command prints one line and exits non-zero instead of a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from mash_broker.contracts.errors import BrokerUnavailable, MashError
from mash_broker.core.settings import Settings

T = TypeVar("T")

# What aiokafka logs when a broker refuses the handshake or the credentials (one line per broker).
_REFUSAL_MARKERS = ("SaslAuthenticationFailed", "Authentication failed", "CERTIFICATE", "closed")


class TopicRefused(MashError):
    """Kafka's ACLs refused this principal a topic or a consumer group."""

    code = "kafka_topic_refused"


def who(settings: Settings) -> str:
    """The principal the settings connect as, in words (never the password)."""
    if settings.kafka_username and settings.kafka_security_protocol.startswith("SASL_"):
        return f"User:{settings.kafka_username} (MASH_KAFKA_USERNAME)"
    if settings.kafka_cert_file is not None:
        return f"the client certificate {settings.kafka_cert_file} (MASH_KAFKA_CERT_FILE)"
    return "an unauthenticated client"


class _Refusals(logging.Handler):
    """Keeps aiokafka's first error line saying why a connection was refused."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.reason is None and any(m in message for m in _REFUSAL_MARKERS):
            self.reason = message.splitlines()[0][:300]


@contextmanager
def kafka_refusals(settings: Settings) -> Iterator[None]:
    """Inside: a refused topic raises :class:`TopicRefused` naming it; credentials or a certificate the
    brokers refused raise ``BrokerUnavailable`` with the brokers' reason."""
    handler = _Refusals()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(handler)
    try:
        yield
    except TopicAuthorizationFailedError as exc:
        topic = str(exc.args[0]) if exc.args else "(not named by Kafka)"
        raise TopicRefused(
            f"Kafka's ACLs refuse {who(settings)} this topic; ask the Kafka administrator to apply "
            "`mash kafka acls --apply` for this agency's principal",
            record=f"topic {topic}",
        ) from exc
    except GroupAuthorizationFailedError as exc:
        group = str(exc.args[0]) if exc.args else "(not named by Kafka)"
        raise TopicRefused(f"Kafka's ACLs refuse {who(settings)} this consumer group", record=f"group {group}") from exc
    except KafkaConnectionError as exc:
        why = handler.reason or str(exc)
        raise BrokerUnavailable(
            f"Kafka at {settings.kafka_bootstrap} refused {who(settings)} or could not be reached: {why}"
        ) from exc
    finally:
        logger.removeHandler(handler)


async def explained(settings: Settings, work: Awaitable[T]) -> T:
    """``await work`` inside :func:`kafka_refusals`: for a command's ``run(lambda: explained(cfg, main()))``."""
    with kafka_refusals(settings):
        return await work
