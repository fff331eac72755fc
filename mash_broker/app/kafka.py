"""Small helpers over aiokafka: readiness, explicit topic creation, producer settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from mash_broker.app.kafka_security import PLAINTEXT, KafkaSecurity
from mash_broker.contracts.errors import BrokerUnavailable
from mash_broker.core.settings import Settings

_PROBE_INTERVAL_S = 0.1


def is_embedded(settings: Settings) -> bool:
    """True when no Kafka bootstrap is configured, so the embedded broker is used."""
    return not settings.kafka_bootstrap


def producer_kwargs(bootstrap: str, *, embedded: bool, security: KafkaSecurity = PLAINTEXT) -> dict[str, Any]:
    """AIOKafkaProducer settings; idempotence only on real Kafka (tansu lacks InitProducerId)."""
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": not embedded,
        "linger_ms": 5,
        **security.client_kwargs(),
    }


def _first_host_port(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return host.strip("[]"), int(port)


async def _probe(bootstrap: str, timeout_s: float, security: KafkaSecurity) -> None:
    """One attempt: a TCP connect (quiet when refused), then a Kafka metadata request."""
    host, port = _first_host_port(bootstrap)
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="mash-readiness",
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        **security.client_kwargs(),
    )
    try:
        await admin.start()
        await admin.describe_cluster()
    finally:
        await admin.close()


async def wait_until_ready(
    bootstrap: str,
    timeout_s: float = 20.0,
    *,
    alive: Callable[[], bool] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Wait until the broker answers a metadata request; raise BrokerUnavailable after ``timeout_s``.

    ``alive`` (optional) is polled between attempts; when it returns False the wait stops at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: BaseException | None = None
    while True:
        if alive is not None and not alive():
            raise BrokerUnavailable(f"broker at {bootstrap} exited before it was ready")
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise BrokerUnavailable(f"broker at {bootstrap} not ready after {timeout_s:g} s (last error: {last!r})")
        try:
            await asyncio.wait_for(_probe(bootstrap, remaining, security), timeout=remaining)
        except (OSError, ValueError, KafkaError, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(min(_PROBE_INTERVAL_S, max(0.0, deadline - loop.time())))
        else:
            return


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create whichever of ``topics`` do not exist yet; topics that already exist are left alone. On Apache
    Kafka, give ``replication_factor`` 3 and ``min_insync_replicas`` 2 so an acks=all write survives a broker."""
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mash-topics", **security.client_kwargs())
    configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(
                    name=t, num_partitions=partitions, replication_factor=replication_factor, topic_configs=configs
                )
                for t in missing
            ]
        )
        for topic, code, *rest in response.topic_errors:
            if code == 0:
                continue
            error = for_code(code)
            if error is TopicAlreadyExistsError:
                continue
            detail = rest[0] if rest and rest[0] else error.__name__
            raise BrokerUnavailable(f"could not create topic: {detail}", record=f"topic {topic}")
    except KafkaError as exc:
        raise BrokerUnavailable(f"could not create topics at {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()
