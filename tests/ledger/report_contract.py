"""`mash report`'s figures for a synthetic week, held to the counts planned by the generator.

``ReportContract`` is abstract like ``LedgerContract``: a backend's test class inherits it and
provides the ``ledger`` fixture. The week (``broker.week``) runs the real gate handler, school inbox
and police parser into the ledger; its ``Truth`` is counted from the plan alone, so the report
(counted from the audited log's events) is checked against numbers computed another way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mash_broker.core.audit.checkpoints import Checkpointer
from mash_broker.core.audit.keys import Ed25519Signer, public_key_b64
from mash_broker.core.audit.proof_file import check_proof
from mash_broker.core.audit.proofs import export
from mash_broker.core.clocks import load_calendar
from mash_broker.core.policy import load_policy
from mash_broker.core.report import Report, front_door_report, report_from_events
from mash_broker.demo.week import WEEK_OF, Truth, synthetic_week
from mash_broker.storage import Ledger

TZ = ZoneInfo("Europe/London")


class ReportContract:
    """The week's report against its plan. Subclasses provide ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    async def week(self, ledger: Ledger) -> tuple[Truth, Report]:
        truth = await synthetic_week(
            ledger, monday=WEEK_OF, tz=TZ, calendar=load_calendar(None), policy=load_policy(None).policy
        )
        return truth, await front_door_report(ledger, truth.start, truth.end, TZ)

    async def test_every_figure_matches_the_counts_planned_by_the_generator(self, week: tuple[Truth, Report]) -> None:
        truth, report = week
        planned = truth.encompass(TZ)
        got = {
            (r["day"], r["school"]): {k: v for k, v in r.items() if k not in ("day", "school")}
            for r in report.section("encompass").records()
        }
        assert got == planned
        totals = {
            k: sum(row[k] for row in planned.values())
            for k in ("notifications", "delivered_late", "not_delivered", "read_late", "not_read")
        }
        # The seed gives a week with every outcome in it, so each column is really exercised.
        assert all(totals.values()), totals
        # Incidents from Monday to Thursday evening are due Tuesday to Friday; Friday's to Sunday's are
        # due the next Monday, after the week.
        assert {date.fromisoformat(day).weekday() for day, _ in planned} == {1, 2, 3, 4}

        # Shares that did not happen, by what stopped them.
        got = {(r["what"], r["reason"]): r["count"] for r in report.section("not_shared").records()}
        unconsented = truth.within(truth.unconsented_referrals)
        assert unconsented > 0
        assert truth.within(truth.malformed) > 0
        assert got == {
            ("message rejected", "contract_invalid"): truth.within(truth.malformed),
            ("message withheld", "no_consent_recorded"): unconsented,
            ("recipient refused", "no_consent_recorded"): unconsented,
        }

        # Contacts decided within 24 hours, outcomes fed back, s47 reports answered on time.
        rows = {r["day"]: {k: v for k, v in r.items() if k != "day"} for r in report.section("contacts").records()}
        assert rows == truth.contact_figures(TZ)
        assert all(
            sum(row[k] for row in rows.values())
            for k in ("flagged_incomplete", "decided_within_24h", "decided_late", "not_decided")
        ), rows
        rows = {r["day"]: {k: v for k, v in r.items() if k != "day"} for r in report.section("outcomes").records()}
        assert rows == truth.outcome_figures(TZ)
        rows = {
            r["gp_practice"]: {k: v for k, v in r.items() if k != "gp_practice"}
            for r in report.section("s47_gp_reports").records()
        }
        assert rows == truth.s47_figures()
        assert all(sum(row[k] for row in rows.values()) for k in ("answered_on_time", "answered_late", "overdue"))

        # Referrals to a person, by reason.
        got = {r["reason"]: r["count"] for r in report.section("referred").records() if r["queue"] == "mash"}
        assert got == {k: v for k, v in truth.referred().items() if v}
        assert sum(got.values()) > 0

    async def test_the_figures_are_recomputed_from_a_verified_export_of_the_audited_log(
        self, ledger: Ledger, week: tuple[Truth, Report]
    ) -> None:
        truth, report = week
        signer = Ed25519Signer(Ed25519PrivateKey.generate())
        checkpointer = Checkpointer(ledger, signer, lambda: truth.end + timedelta(days=2))
        proof = await export(
            checkpointer,
            {signer.key_id: public_key_b64(signer.public_key)},
            truth.start - timedelta(days=1),
            truth.end + timedelta(days=2),
        )
        checked = check_proof(proof.model_dump_json(), signer.public_key)
        assert checked.ok, checked.problems
        again = report_from_events(checked.proven, truth.start, truth.end, TZ)
        assert again.as_json() == report.as_json()
