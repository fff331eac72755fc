"""Clock alerts: a declared clock (``mash_broker/defaults/clocks.toml``) is close to its deadline or past it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from mash_broker.contracts._base import Contract, OrgId, Timestamp


class AlertState(StrEnum):
    """How far the clock has run."""

    WARNING = "warning"  # the deadline is within the clock's warn_before_hours
    BREACHED = "breached"  # the deadline has passed with no stop event


class ClockAlert(Contract):
    """A warning or breach for whoever the clock escalates to: ids, names and times only, never
    personal data (the recipient looks the subject up in its own case system or with `mash gate explain`)."""

    kind: Literal["clock.alert"] = "clock.alert"
    clock: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
    subject_message_id: UUID
    state: AlertState
    started_at: Timestamp
    due_at: Timestamp
    escalate_to: OrgId
