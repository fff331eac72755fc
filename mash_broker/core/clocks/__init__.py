"""Deadline clocks the front door is judged on; pure functions of typed inputs and `now`."""

from mash_broker.core.clocks.calendar import SchoolCalendar, load_calendar
from mash_broker.core.clocks.encompass import (
    DeliveryStatus,
    ReadStatus,
    delivery_status,
    encompass_deadline,
    is_overdue,
    read_status,
)

__all__ = [
    "DeliveryStatus",
    "ReadStatus",
    "SchoolCalendar",
    "delivery_status",
    "encompass_deadline",
    "is_overdue",
    "load_calendar",
    "read_status",
]
