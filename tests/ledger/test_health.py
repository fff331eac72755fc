"""The health adapter's flows (issue 5 item 3) through the gate and a real ledger, on SQLite and PostgreSQL.

``HealthContract`` runs on both backends (the classes at the end); PostgreSQL skips with the reason when
it cannot be reached, as in ``test_postgres``. All data is synthetic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time, timedelta
from pathlib import Path

import pytest

from broker.clocks import load_calendar
from broker.gate_service import GateContext, process_inbound
from broker.ledger import Ledger
from consent_gate import HealthTeams, parse_policy
from contracts import Delivery, Envelope, topics

from .gate_contract import DIRECTORY, NOW, outbox, police_envelope, wire
from .test_postgres import PostgresBackend
from .test_sqlite import SqliteBackend

ROOT = Path(__file__).resolve().parents[2]
POLICY = parse_policy((ROOT / "deploy" / "policy.toml").read_text(encoding="utf-8"), source="deploy/policy.toml")
TEAMS = HealthTeams(school_nurses={"900001": "school_nurse:sn-north"},
                    health_visitors={"ZZ99": "health_visitor:hv-north"})


class HealthContract:
    """Health recipients through the gate. Subclasses provide ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    async def gate(self, ledger: Ledger) -> GateContext:
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        return GateContext(ledger=ledger, policy=POLICY, calendar=load_calendar(None), notify_by=time(10, 0),
                           school_day_starts=time(8, 30), clock=lambda: NOW, health_teams=TEAMS)

    # -- (a) domestic abuse notifications to health visitors and school nurses ---------------------

    async def test_school_age_notification_reaches_the_school_and_the_school_nurse_team(
            self, gate: GateContext) -> None:
        env = police_envelope()  # born 2016: school age
        assert await process_inbound(gate, wire(env), topics.POLICE_NOTIFICATIONS) == "share"
        (row,) = await outbox(gate.ledger, topics.HEALTH_DELIVERIES)
        sent = Envelope.model_validate_json(row.value)
        assert isinstance(sent.payload, Delivery)
        assert (row.key, sent.payload.recipient) == ("school_nurse:sn-north", "school_nurse:sn-north")
        assert "payload.summary_for_school" not in sent.payload.released
        assert "ZZ99" not in row.value  # routed by the postcode district, never released
        recipients = {d["recipient"] for d in await gate.ledger.all_deliveries()}
        assert recipients == {"school:900001", "school_nurse:sn-north"}
        assert len(await outbox(gate.ledger, topics.EDUCATION_DELIVERIES)) == 1

    async def test_under_five_notification_reaches_the_health_visitor_team(self, gate: GateContext) -> None:
        env = police_envelope(child_dob="2023-02-01", school_urn="")
        assert await process_inbound(gate, wire(env), topics.POLICE_NOTIFICATIONS) == "share"
        (row,) = await outbox(gate.ledger, topics.HEALTH_DELIVERIES)
        assert row.key == "health_visitor:hv-north"
        (queued,) = await gate.ledger.events("delivery.queued")
        assert queued["detail"]["agreement"] == "health-visitor-domestic-abuse"
        assert [q["reason_code"] for q in await gate.ledger.queue()] == ["school_not_given"]


class TestSqliteHealth(SqliteBackend, HealthContract):
    """The health flows over a SQLite ledger."""


@pytest.mark.postgres
class TestPostgresHealth(PostgresBackend, HealthContract):
    """The health flows over a PostgreSQL ledger."""
