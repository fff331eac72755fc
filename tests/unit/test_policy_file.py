"""The policy file: the shipped one is valid; every kind of mistake is refused naming the field and reason."""

from __future__ import annotations

import pytest
from consent_builders import ROOT

from mash_broker.consent_gate import parse_policy
from mash_broker.contracts import PolicyError

SHIPPED = (ROOT / "mash_broker" / "defaults" / "policy.toml").read_text()


def test_the_shipped_policy_has_the_four_agreements_the_area_needs() -> None:
    policy = parse_policy(SHIPPED, source="mash_broker/defaults/policy.toml")
    classes = {a.recipient_class for a in policy.agreements}
    assert {"school", "health_visitor", "school_nurse", "gp", "mash"} <= classes
    [encompass] = [a for a in policy.agreements if a.name == "operation-encompass-school-key-adults"]
    assert "payload.home_postcode" not in encompass.released_fields
    feedback = {a.recipient_class for a in policy.agreements if a.purpose == "referrer_feedback"}
    assert feedback == {"police", "health", "school", "education", "la", "probation"}  # every referrer is told


@pytest.mark.parametrize(
    ("edit", "field", "why"),
    [
        (('version = "example-area-2026.11-5"', 'version = "has spaces"'), "version", "pattern"),
        (
            ('content_level = "full"\nmax_age = 17', 'content_level = "everything"\nmax_age = 17'),
            "agreement[0].content_level",
            "full",
        ),
        (
            (
                '"payload.summary_for_school",\n]\ncontent_level = "full"',
                '"payload.summary_for_school", "payload.home_address",\n]\ncontent_level = "full"',
            ),
            "agreement[0]",
            "released_fields[7]",
        ),
        (
            (
                'message_kinds = ["notification.encompass"]\narticle6 = ["legal_obligation", "public_task"]',
                'message_kinds = ["notification.gossip"]\narticle6 = ["legal_obligation", "public_task"]',
            ),
            "agreement[0]",
            "unknown kind",
        ),
        (
            (
                'article6 = ["legal_obligation", "public_task"]\nstatutory_powers = ["encompass_duty_vpa_2024"]',
                'article6 = ["legitimate_interests"]\nstatutory_powers = ["encompass_duty_vpa_2024"]',
            ),
            "agreement[0].article6[0]",
            "public_task",
        ),
        (("gillick_age = 12", "gillick_age = 3"), "gillick_age", "greater than or equal"),
        (("max_age = 4\n", "max_age = 4\nmin_age = 9\n"), "agreement[1]", "min_age is above max_age"),
        (
            ('name = "school-nurse-domestic-abuse"', 'name = "health-visitor-domestic-abuse"'),
            "agreement",
            "appears twice",
        ),
        (
            ('content_level = "full"\nmax_age = 17', 'content_level = "full"\nmax_age = 17\nshare_everything = true'),
            "agreement[0].share_everything",
            "Extra inputs",
        ),
    ],
    ids=[
        "version",
        "content-level",
        "field-not-in-contract",
        "unknown-kind",
        "unknown-basis",
        "gillick-age",
        "age-band",
        "duplicate-name",
        "unknown-key",
    ],
)
def test_a_mistake_is_refused_naming_the_field(edit: tuple[str, str], field: str, why: str) -> None:
    old, new = edit
    assert old in SHIPPED
    with pytest.raises(PolicyError) as exc:
        parse_policy(SHIPPED.replace(old, new, 1), source="bad.toml")
    assert exc.value.record == "bad.toml"
    assert exc.value.field is not None
    assert exc.value.field.startswith(field)
    assert why in str(exc.value)


def test_not_toml_is_refused() -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse_policy("version = ", source="bad.toml")


def test_no_agreements_is_refused() -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy('version = "x1"\n', source="bad.toml")
    assert exc.value.field == "agreement"
