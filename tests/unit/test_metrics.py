"""The gate's metrics without I/O: figures read at most once per ``ttl_s``, exposed with bounded labels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from mash_broker.app.observability import GateMetrics
from mash_broker.core.ports import LedgerFigures
from mash_broker.storage.metrics import agency_of

NOW = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)


class FakeLedger:
    def __init__(self) -> None:
        self.reads = 0
        self.published: list[tuple[datetime, datetime]] = []

    async def ledger_answers(self) -> bool:
        return True

    async def figures(self, now: datetime) -> LedgerFigures:
        self.reads += 1
        return LedgerFigures(
            decisions={("share", "statutory_duty"): 3, ("refer", "no_school_found"): 1},
            quarantines={"bad_signature": 2},
            outbox_depth={"education.delivery.v1": 4},
            outbox_oldest={"education.delivery.v1": now - timedelta(minutes=2)},
            clock_warnings={"encompass_notification": 1},
            clock_breaches={"encompass_notification": 0},
            unacknowledged={"school": 4},
            unread={"school": 7},
        )

    async def published_since(self, since: datetime, limit: int = 10_000) -> list[tuple[datetime, datetime]]:
        return [p for p in self.published if p[1] > since]

    async def outbox_headers(self, outbox_id: uuid.UUID) -> dict[str, str] | None:
        return None


def parsed(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_figures_are_read_once_per_ttl_and_exposed_by_verdict_reason_topic_clock_and_agency() -> None:
    ledger, tick = FakeLedger(), [0.0]
    metrics = GateMetrics(ledger, lambda: NOW, ttl_s=5, monotonic=lambda: tick[0])  # type: ignore[arg-type]
    first = parsed(await metrics.exposition())
    await metrics.exposition()
    assert ledger.reads == 1  # cached
    tick[0] = 6.0
    await metrics.exposition()
    assert ledger.reads == 2

    assert ({"verdict": "share", "reason": "statutory_duty"}, 3.0) in first["mash_gate_decisions_total"]
    assert first["mash_gate_quarantined_total"] == [({"reason": "bad_signature"}, 2.0)]
    assert first["mash_outbox_oldest_due_age_seconds"] == [({"topic": "education.delivery.v1"}, 120.0)]
    assert first["mash_clock_warnings_total"] == [({"clock": "encompass_notification"}, 1.0)]
    assert first["mash_deliveries_unacknowledged"] == [({"agency": "school"}, 4.0)]
    assert first["mash_deliveries_unread"] == [({"agency": "school"}, 7.0)]


async def test_relay_latency_counts_each_publication_once_from_when_it_was_due() -> None:
    ledger, tick = FakeLedger(), [0.0]
    metrics = GateMetrics(ledger, lambda: NOW, ttl_s=1, monotonic=lambda: tick[0])  # type: ignore[arg-type]
    due = NOW + timedelta(seconds=1)
    ledger.published = [(due, due + timedelta(seconds=0.2)), (due, due + timedelta(seconds=20))]
    await metrics.exposition()
    tick[0] = 2.0
    found = parsed(await metrics.exposition())  # the same two rows: not counted again
    assert found["mash_relay_latency_seconds_count"] == [({}, 2.0)]
    buckets = dict((labels["le"], v) for labels, v in found["mash_relay_latency_seconds_bucket"])
    assert buckets["0.25"] == 1.0
    assert buckets["30.0"] == 2.0


def test_a_recipient_is_folded_into_its_agency() -> None:
    assert agency_of("school:900001") == "school"
    assert agency_of("health:team-north") == "health"


async def test_the_example_dashboard_charts_only_metrics_the_broker_exposes() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "deploy" / "grafana" / "mash-broker.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    charted = {m for e in exprs for m in re.findall(r"\bmash_[a-z_]+", e)}
    metrics = GateMetrics(FakeLedger(), lambda: NOW)  # type: ignore[arg-type]
    text = await metrics.exposition()
    exposed = set(parsed(text)) | set(re.findall(r"^# TYPE (\S+)", text.decode(), re.MULTILINE))
    missing = {m for m in charted if m not in exposed and f"{m}_total" not in exposed}
    assert not missing, missing
    assert {"mash_gate_decisions_total", "mash_consumer_lag", "mash_relay_latency_seconds_bucket"} <= charted
