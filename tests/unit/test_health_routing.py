"""Domestic abuse notifications to health (issue 5 item 3a): the health directory and the gate's routing. Pure."""

from __future__ import annotations

from datetime import date

import pytest
from consent_builders import NOW, POLICY, ROOT
from gate_pipeline import decide
from test_gate import KNOWN, OCCURRED, notification

from mash_broker.agencies.health.routing import HealthTeams, postcode_district
from mash_broker.agencies.health.teams import parse_teams
from mash_broker.consent_gate import Reason, Verdict
from mash_broker.contracts import InputFileError

TEAMS = HealthTeams(
    school_nurses={"900001": "school_nurse:sn-north"}, health_visitors={"ZZ99": "health_visitor:hv-north"}
)
HEALTH_FIELDS = {
    "subject.given_name",
    "subject.family_name",
    "subject.date_of_birth",
    "payload.police_reference",
    "payload.occurred_at",
    "payload.child_present",
}


def born_years_before(years: int) -> date:
    return date(OCCURRED.year - years, 1, 1)


@pytest.mark.parametrize(
    ("postcode", "district"),
    [
        ("ZZ99 1AA", "ZZ99"),
        ("zz991aa", "ZZ99"),
        ("Z9 9ZZ", "Z9"),
        ("", None),
        (None, None),
        ("ZZ", None),
        ("ZZ-99 1AA", None),
    ],
)
def test_postcode_district(postcode: str | None, district: str | None) -> None:
    assert postcode_district(postcode) == district


def test_under_five_goes_to_the_health_visitor_team_with_the_agreement_fields_only() -> None:
    msg = notification(urn=None, dob=born_years_before(3))
    d = decide(msg, known_schools=KNOWN, policy=POLICY, now=NOW, health_teams=TEAMS)
    (release,) = d.releases
    assert release.recipient == "health_visitor:hv-north"
    assert release.agreement == "health-visitor-domestic-abuse"
    assert set(release.released) == HEALTH_FIELDS  # never the home postcode or the police account
    assert d.refer_to == "mash"  # no school: the MASH still routes the school side


def test_school_age_goes_to_the_school_and_its_school_nurse_team() -> None:
    d = decide(notification(dob=born_years_before(9)), known_schools=KNOWN, policy=POLICY, now=NOW, health_teams=TEAMS)
    assert d.verdict is Verdict.SHARE
    by = {r.recipient: r for r in d.releases}
    assert set(by) == {"school:900001", "school_nurse:sn-north"}
    assert set(by["school_nurse:sn-north"].released) == HEALTH_FIELDS
    assert "payload.summary_for_school" in by["school:900001"].released


def test_no_team_in_the_directory_routes_nowhere_in_health() -> None:
    d = decide(
        notification(urn="900002", dob=born_years_before(9)),
        known_schools=KNOWN,
        policy=POLICY,
        now=NOW,
        health_teams=TEAMS,
    )
    assert [r.recipient for r in d.releases] == ["school:900002"]
    under_five = decide(
        notification(urn=None, postcode="ZZ1 1AA", dob=born_years_before(2)),
        known_schools=KNOWN,
        policy=POLICY,
        now=NOW,
        health_teams=TEAMS,
    )
    assert under_five.verdict is Verdict.REFER
    assert not under_five.releases


def test_a_basis_the_health_agreement_does_not_accept_is_refused_for_health_only() -> None:
    msg = notification(
        dob=born_years_before(9), basis={"article6": "legal_obligation", "statutory_power": "children_act_1989_s17"}
    )
    d = decide(msg, known_schools=KNOWN, policy=POLICY, now=NOW, health_teams=TEAMS)
    assert d.verdict is Verdict.WITHHOLD
    assert {r.recipient for r in d.not_released} >= {"school_nurse:sn-north"}
    assert all(Reason.STATUTORY_POWER_NOT_IN_AGREEMENT in r.reasons for r in d.not_released)


def test_health_teams_csv() -> None:
    data = (
        b"team_id,team_type,covers\nhv-north,health_visitor,zz99\nsn-north,school_nurse,900001\n"
        b"sn-x,school_nurse,9001\nsn-y,school_nurse,900001\nbad id,dentist,ZZ99\n"
    )
    result = parse_teams(data, source="teams.csv")
    assert result.teams == HealthTeams(
        school_nurses={"900001": "school_nurse:sn-north"}, health_visitors={"ZZ99": "health_visitor:hv-north"}
    )
    assert [(p.line, p.field) for p in result.problems] == [
        (4, "covers"),
        (5, "covers"),
        (6, "team_id"),
        (6, "team_type"),
    ]
    assert result.problems[1].reason == "already covered by line 3"


def test_health_teams_csv_with_a_wrong_header_is_unusable() -> None:
    with pytest.raises(InputFileError, match="header"):
        parse_teams(b"team,type\nx,y\n", source="teams.csv")


def test_shipped_demo_directory_parses() -> None:
    result = parse_teams((ROOT / "mash_broker/demo/data/health-teams.csv").read_bytes(), source="health-teams.csv")
    assert not result.problems
    assert result.teams.for_child(3, None, "ZZ99 1AA") == "health_visitor:hv-north"
