"""A region's configuration (issue 15): the demo's loads; each mistake is named by file and field."""

from __future__ import annotations

import shutil
from datetime import date, time
from pathlib import Path

import pytest

from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import PolicyError
from mash_broker.core.area_files import load_region
from mash_broker.core.areas import Region, area_of_queue
from mash_broker.core.clocks import load_calendar
from mash_broker.core.policy import load_policy
from mash_broker.demo.areas import AREAS_DIR


def region_in(folder: Path) -> Region:
    return load_region(
        folder,
        policy=load_policy(None, REGISTRY.policy_kinds),
        calendar=load_calendar(None),
        notify_by=time(10, 0),
        school_day_starts=time(8, 30),
        kinds=REGISTRY.policy_kinds,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(AREAS_DIR, tmp_path / "areas", ignore=shutil.ignore_patterns("__*")))


def test_the_demo_region_loads_with_each_authoritys_own_rules() -> None:
    region = region_in(AREAS_DIR)
    assert sorted(region.areas) == ["998", "999"]
    assert [p.policy.version for p in region.policies] == ["example-area-2026.11-5", "998-2026.11-1"]
    south = region.areas["998"]
    assert not south.calendar.is_school_day(date(2026, 11, 23))  # its INSET day
    assert region.areas["999"].calendar.is_school_day(date(2026, 11, 23))
    assert (south.mash, south.advice) == ("mash:998", "advice:998")


@pytest.mark.parametrize(
    ("postcode", "code"),
    [
        ("ZZ99 3CD", "998"),
        ("zz993cd", "998"),
        ("ZZ99 1AA", "999"),
        ("ZZ98 1AA", "998"),
        ("AB1 2CD", None),
        (None, None),
    ],
)
def test_the_home_authority_comes_from_the_most_specific_entry(postcode: str | None, code: str | None) -> None:
    assert region_in(AREAS_DIR).home_authority(postcode) == code


def test_queue_names_carry_the_authority() -> None:
    assert (area_of_queue("mash:998"), area_of_queue("advice:999"), area_of_queue("mash")) == ("998", "999", None)


def test_an_override_of_another_regional_version_is_refused(copy: Path) -> None:
    path = copy / "998" / "policy.toml"
    path.write_text(path.read_text().replace('base = "example-area-2026.11-5"', 'base = "old-1"'))
    with pytest.raises(PolicyError, match="base: overrides 'old-1'") as raised:
        region_in(copy)
    assert raised.value.field == "base"


def test_an_override_agreement_is_checked_and_named_by_its_place(copy: Path) -> None:
    path = copy / "998" / "policy.toml"
    path.write_text(path.read_text().replace('"payload.child_present",\n]', '"payload.no_such_field",\n]'))
    with pytest.raises(PolicyError, match=r"agreement\[0\]"):
        region_in(copy)


def test_a_district_of_no_configured_authority_is_refused(copy: Path) -> None:
    (copy / "postcode-districts.csv").write_text("district,la_code\nZZ99,999\nZZ97,997\n")
    with pytest.raises(PolicyError, match="line 3: la_code: '997'"):
        region_in(copy)
