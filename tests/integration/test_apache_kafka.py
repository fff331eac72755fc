"""The same gate path on Apache Kafka (Confluent cp-kafka via testcontainers). Needs a Docker engine."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.docker


def _docker_reason() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        return f"needs a Docker engine for Apache Kafka via testcontainers ({type(exc).__name__})"
    return None


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    reason = _docker_reason()
    if reason:
        pytest.skip(reason)
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError:  # older layout
        from testcontainers.community.kafka import KafkaContainer  # type: ignore[no-redef]
    with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


async def test_encompass_notification_is_gated_and_delivered_on_apache_kafka(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from mash_broker.agencies.police import POLICE_NOTIFICATIONS
    from mash_broker.agencies.police.export import parse_export
    from mash_broker.agencies.registry import REGISTRY
    from mash_broker.app.bootstrap import build_broker, build_services
    from mash_broker.app.kafka import ensure_topics
    from mash_broker.core.settings import Settings
    from mash_broker.storage import Ledger

    settings = Settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap)
    await ensure_topics(kafka_bootstrap, REGISTRY.all_topics)
    ledger = await Ledger.open(settings.ledger_url)
    now = datetime.now(UTC)
    async with ledger.transaction() as tx:
        await tx.replace_directory(
            [("900001", "Example Primary School", "999", [("Alex Keyadult", "alex@example.org")])], now
        )
    csv = (
        "incident_ref,occurred_at,reported_at,force,incident_type,child_given_name,child_family_name,"
        "child_dob,child_present,school_urn,home_postcode,summary\n"
        f"K/{uuid.uuid4().hex[:8]},2026-11-20T21:00:00Z,2026-11-20T21:30:00Z,examplepolice,domestic_abuse,"
        "Ada,Test,2016-01-01,yes,900001,ZZ99 1AA,Synthetic summary.\n"
    ).encode()
    row = parse_export(csv, source="k.csv", now=now, tz=ZoneInfo("Europe/London"))
    envelope = row.accepted[0].envelope
    services = build_services(settings, ledger, build_broker(kafka_bootstrap, embedded=False))
    await services.start()
    try:
        await services.broker.publish(envelope.model_dump_json().encode(), POLICE_NOTIFICATIONS)
        for _ in range(300):
            rows = await ledger.all_deliveries()
            if rows and rows[0].delivered_at:
                break
            await asyncio.sleep(0.1)
        assert len(rows) == 1
        assert rows[0].recipient == "school:900001"
        assert rows[0].delivered_at is not None
    finally:
        await services.stop()
        await ledger.close()
