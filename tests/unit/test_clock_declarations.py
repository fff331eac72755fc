"""mash_broker/defaults/clocks.toml: the shipped file is valid, and a bad file is refused naming the field."""

from __future__ import annotations

import re

import pytest

from mash_broker.contracts import PolicyError
from mash_broker.core.clocks.declared import CalendarKind, Report, load_clocks, parse_clocks

GOOD = """
[[clock]]
name = "contact_decision"
start = { event = "message.received", kind = "contact" }
stop = { event = "message.received", kind = "outcome", subject = "payload.contact_message_id" }
hours = 24
warn_before_hours = 4
escalate_to = "mash:team-manager"
"""


def test_shipped_file_declares_every_front_door_clock() -> None:
    declared = load_clocks(None)
    names = {c.name for c in declared.clocks}
    assert names == {
        "contact_decision",
        "initial_health_assessment",
        "s47_gp_report",
        "child_and_family_assessment",
        "initial_child_protection_conference",
        "encompass_read",
        "delivery_ack_school",
        "delivery_ack_health",
        "delivery_ack_probation",
    }
    by_name = {c.name: c for c in declared.clocks}
    assert by_name["child_and_family_assessment"].working_days == 45
    assert by_name["initial_child_protection_conference"].working_days == 15
    assert by_name["contact_decision"].stop.payload_field == "contact_message_id"
    assert by_name["s47_gp_report"].due_field == "answer_by"
    assert by_name["encompass_read"].due_field == "notify_by"


def test_a_clock_parses() -> None:
    (clock,) = parse_clocks(GOOD, source="t.toml").clocks
    assert clock.hours == 24
    assert clock.calendar is CalendarKind.WORKING_DAYS
    assert clock.start.matches("message.received", {"kind": "contact"})
    assert not clock.start.matches("message.received", {"kind": "outcome"})
    assert clock.start.subject_of("m-1", {}) == "m-1"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("hours = 24", ""), "clock[0]"),
        (GOOD.replace("hours = 24", "hours = 24\nworking_days = 1"), "clock[0]"),
        (GOOD.replace("hours = 24", "hours = -1"), "clock[0].hours"),
        (GOOD.replace("hours = 24", 'hours = 24\ndue_field = "answer_by"'), "clock[0]"),
        (GOOD.replace("hours = 24", 'due_field = "Answer By"'), "clock[0].due_field"),
        (GOOD.replace('escalate_to = "mash:team-manager"', ""), "clock[0].escalate_to"),
        (GOOD.replace('event = "message.received", kind = "contact"', 'event = "Received"'), "clock[0].start.event"),
        (GOOD + '\ncalendar = "lunar"', "clock[0].calendar"),
        (GOOD.replace("hours = 24", "hours = 24\nwarn = 3"), "clock[0].warn"),
        (GOOD + GOOD, "clock[1].name"),
    ],
)
def test_bad_file_names_the_field(text: str, field: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_clocks(text, source="t.toml")
    assert err.value.field == field
    assert "t.toml" in str(err.value)


def test_not_toml() -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse_clocks("[[clock", source="t.toml")


def test_where_filters_on_detail_values_and_stop_may_list_triggers() -> None:
    text = GOOD.replace(
        'start = { event = "message.received", kind = "contact" }',
        'start = { event = "delivery.queued", subject = "delivery_id", where = { recipient = ["school:*", "gp:*"] } }',
    )
    text = text.replace('escalate_to = "mash:team-manager"', 'escalate_to = "sender"\nreport = "non_delivery"')
    text = re.sub(
        r"stop = .*",
        'stop = [{ event = "delivery.received", subject = "delivery_id" }, '
        '{ event = "share.withdrawn", subject = "delivery_id" }]',
        text,
    )
    (clock,) = parse_clocks(text, source="t.toml").clocks
    assert clock.start.matches("delivery.queued", {"recipient": "gp:A81001"})
    assert not clock.start.matches("delivery.queued", {"recipient": "la:999"})
    assert not clock.start.matches("delivery.queued", {})
    assert [s.event for s in clock.stops] == ["delivery.received", "share.withdrawn"]
    assert clock.report is Report.NON_DELIVERY


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace('escalate_to = "mash:team-manager"', 'escalate_to = "sender"'),
        GOOD + 'report = "non_delivery"\n',
        GOOD.replace('escalate_to = "mash:team-manager"', 'escalate_to = "the manager"'),
    ],
)
def test_non_delivery_reports_go_to_the_sender_and_only_they_do(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_clocks(text, source="t.toml")
