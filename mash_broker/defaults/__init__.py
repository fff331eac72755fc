"""Shipped defaults as package data: the sharing policy, the declared clocks and an example school calendar."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
POLICY_FILE = HERE / "policy.toml"
CLOCKS_FILE = HERE / "clocks.toml"
SCHOOL_CALENDAR_EXAMPLE = HERE / "school-calendar.toml"
