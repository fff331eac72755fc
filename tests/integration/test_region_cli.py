"""A region of two authorities end to end (issue 15): `mash up` on the embedded broker and SQLite with
MASH_AREAS_DIR set to the demo's region, the demo's directory (Test Hill Primary, 900003, in authority 998)
and its overnight export; then every MASH manager's command with --area, across the boundary.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mash_broker.demo.areas import AREAS_DIR, SCHOOLS

from .helpers import DEMO, ROOT, Mash, mash_session, wait_for

pytestmark = pytest.mark.embedded

EXIT_UNUSABLE = 2
SHIPPED_POLICY = ROOT / "mash_broker" / "defaults" / "policy.toml"
LESS = {"subject.given_name", "subject.family_name", "subject.date_of_birth", "payload.occurred_at",
        "payload.child_present"}  # fmt: skip


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("region")
    with mash_session(base, MASH_AREAS_DIR=str(AREAS_DIR)) as mash:
        mash.up()
        assert mash.run("school", "load", str(SCHOOLS)).returncode == 0
        mash.run("police", "ingest", str(DEMO / "overnight-export.csv"), "--json")

        def settled() -> bool:
            return (
                mash.scalar("SELECT count(*) FROM deliveries WHERE recipient LIKE 'school:%'") == 9
                and mash.scalar(
                    "SELECT count(*) FROM deliveries WHERE recipient LIKE 'school:%' AND delivered_at IS NULL"
                )
                == 0
            )

        wait_for("every school delivery to be delivered", settled, 30)
        yield mash


def ids(mash: Mash) -> dict[str, str]:
    """Each child's given name -> message id, from the ledger's envelopes."""
    rows = mash.sql("SELECT message_id, envelope FROM messages")
    return {json.loads(env)["subject"]["given_name"]: str(mid) for mid, env in rows}


def deliveries(mash: Mash, message_id: str) -> dict[str, dict[str, Any]]:
    rows = mash.sql("SELECT recipient, envelope FROM deliveries WHERE message_id = ?", message_id)
    return {r: json.loads(env)["payload"] for r, env in rows}


def test_the_export_is_delivered_right_for_each_authority(region: Mash) -> None:
    child = ids(region)
    lily = deliveries(region, child["Lily"])
    assert set(lily) == {"school:900001", "mash:998"}  # cross-border: her school in 999, her home in 998
    assert lily["mash:998"]["policy_version"] == "998-2026.11-1"
    assert "payload.summary_for_school" in lily["school:900001"]["released"]
    max_ = deliveries(region, child["Max"])["school:900003"]
    assert set(max_["released"]) == LESS
    assert datetime.fromisoformat(max_["notify_by"]).astimezone(UTC) == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    ava = deliveries(region, child["Ava"])["school:900001"]
    assert datetime.fromisoformat(ava["notify_by"]).astimezone(UTC) == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_queue_list_shows_only_the_authoritys_own_queue(region: Mash) -> None:
    child = ids(region)
    north = {i["message_id"] for i in region.run("queue", "list", "--area", "999", "--json").json()}
    assert north == {child["Oliver"], child["Grace"]}
    assert region.run("queue", "list", "--area", "998", "--json").json() == []
    assert region.run("queue", "list", "--area", "998", "--queue", "advice", "--json").json() == []
    regional = {i["message_id"] for i in region.run("queue", "list", "--json").json()}
    assert regional == {child["Harry"]}  # home authority not known: the region's queue


def test_triage_shows_only_the_authoritys_own_police_notifications(region: Mash) -> None:
    child = ids(region)
    south = {i["message_id"] for i in region.run("queue", "triage", "--area", "998", "--json").json()}
    assert south == {child["Lily"], child["Max"]}
    north = {i["message_id"] for i in region.run("queue", "triage", "--area", "999", "--json").json()}
    assert not north & south
    assert child["Ava"] in north


def test_report_and_clocks_stay_inside_the_authority(region: Mash) -> None:
    period = ("--from", "2026-11-16", "--to", "2026-11-30", "--format", "json")
    south = region.run("report", *period, "--area", "998").json()
    assert south["scope"] == "authority 998"
    assert {r["school"] for r in south["sections"]["encompass"]["rows"]} == {"900003"}
    assert south["sections"]["referred"]["rows"] == []
    north = region.run("report", *period, "--area", "999").json()
    assert "900003" not in {r["school"] for r in north["sections"]["encompass"]["rows"]}
    child = ids(region)
    south_deliveries = {
        d for (d,) in region.sql("SELECT delivery_id FROM deliveries WHERE recipient IN ('school:900003', 'mash:998')")
    }
    clocks = region.run("clocks", "list", "--area", "998", "--json").json()
    assert clocks
    assert all(c["subject_id"] in south_deliveries | {child["Lily"], child["Max"], child["Harry"]} for c in clocks)
    north_clocks = {c["subject_id"] for c in region.run("clocks", "list", "--area", "999", "--json").json()}
    assert not north_clocks & south_deliveries
    assert region.run("queue", "quarantine", "--area", "998", "--json").json() == []


def test_an_unknown_area_or_no_region_is_refused_in_one_line(region: Mash, tmp_path: Path) -> None:
    for args in (
        ("queue", "list"),
        ("queue", "triage"),
        ("clocks", "list"),
        ("report", "--from", "2026-11-16", "--to", "2026-11-30"),
    ):
        done = region.run(*args, "--area", "997")
        assert done.returncode == EXIT_UNUSABLE, done
        assert "997" in done.stderr, done
    done = region.run("queue", "list", "--area", "999", env={"MASH_AREAS_DIR": ""})
    assert done.returncode == EXIT_UNUSABLE, done


def test_what_if_and_replay_decide_in_the_region_as_the_gate_did(region: Mash) -> None:
    """One pipeline: under the same policies, what-if changes nothing and a replay re-sends every delivery
    (the school's under its authority's fields, the home MASH's) with the fields released then."""
    window = ("--from", "2000-01-01", "--to", "2100-01-01")
    what_if, dry_run = region.run_all(
        ("gate", "what-if", "--policy", str(SHIPPED_POLICY), "--json"), ("replay", *window, "--dry-run", "--json")
    )
    assert what_if.returncode == 0, what_if
    assert what_if.json()["changes"] == []
    assert what_if.json()["replayed"] == 11
    assert what_if.json()["policy_versions"] == ["example-area-2026.11-5", "998-2026.11-1"]
    assert dry_run.returncode == 0, dry_run
    plan = dry_run.json()
    assert (plan["withheld"], plan["changes"]) == ([], [])
    resend = {(i["message_id"], i["recipient"]): i for i in plan["resend"]}
    child = ids(region)
    assert set(resend[(child["Max"], "school:900003")]["fields"]) == LESS
    assert resend[(child["Max"], "school:900003")]["policy_version"] == "998-2026.11-1"
    assert resend[(child["Lily"], "mash:998")]["policy_version"] == "998-2026.11-1"
    assert "payload.summary_for_school" in resend[(child["Lily"], "school:900001")]["fields"]
    assert len(resend) == region.count("deliveries")


def test_each_authoritys_mash_receives_its_police_notifications_in_its_inbox(region: Mash) -> None:
    """A MASH's deliveries (``mash:<code>``) are received by the MASH's inbox like a school's: marked delivered,
    on the audited log as ``delivery.received``, and acknowledged to the force; none is left looking undelivered."""

    def received() -> list[tuple[Any, ...]]:
        rows = region.sql("SELECT delivery_id, delivered_at FROM deliveries WHERE recipient LIKE 'mash:%'")
        return rows if rows and all(at is not None for _, at in rows) else []

    rows = wait_for("every MASH delivery to be received", received, 30)
    mash_deliveries = {str(d) for d, _ in rows}
    child = ids(region)
    assert set(deliveries(region, child["Lily"])) >= {"mash:998"}
    logged = {
        json.loads(detail)["delivery_id"]
        for (detail,) in region.sql("SELECT detail FROM events WHERE event_type = 'delivery.received'")
    }
    assert mash_deliveries <= logged
    triage = region.run("queue", "triage", "--area", "998", "--json").json()
    assert {t["delivery_id"] for t in triage} <= mash_deliveries
    assert region.scalar("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL AND withdrawn_at IS NULL") == 0


def test_each_authoritys_clocks_run_as_its_clocks_file_says(region: Mash) -> None:
    """Authority 998's clocks.toml warns its own MASH two hours before a school's Encompass deadline (the
    region: the team manager, one hour): the running keeper started each school's clock under the authority
    that released the delivery (a clock started after that point warns at once)."""
    for area, before, escalate_to in (("998", 2, "mash:998"), ("999", 1, "mash:team-manager")):
        clocks = [
            c for c in region.run("clocks", "list", "--area", area, "--json").json() if c["name"] == "encompass_read"
        ]
        assert clocks, area
        for c in clocks:
            due, started = datetime.fromisoformat(c["due_at"]), datetime.fromisoformat(c["started_at"])
            warn = max(due - timedelta(hours=before), started)
            assert (datetime.fromisoformat(c["warn_at"]), c["escalate_to"]) == (warn, escalate_to), (area, c)
