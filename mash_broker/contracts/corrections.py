"""Corrections and withdrawals of a notification already sent. Pure.

A correction is a new version of an ``EncompassNotification`` whose ``supersedes`` names the version it
replaces (``contracts.payloads``). A withdrawal (``NotificationWithdrawn``) takes one back that was sent
in error. Either way, each copy the gate had released of the old version is withdrawn: one not yet
published is never sent, and the recipient of one already published is sent a ``DeliveryWithdrawn``
notice. Neither a withdrawal nor a notice carries any content: ids, a reason code and a time.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from mash_broker.contracts._base import Contract, OrgId, Timestamp

WithdrawalReason = Literal["sent_in_error", "wrong_child", "wrong_recipient", "duplicate"]


class NotificationWithdrawn(Contract):
    """Police withdraw a notification they sent in error: every copy of it is withdrawn, nothing replaces it."""

    kind: Literal["notification.encompass.withdrawal"] = "notification.encompass.withdrawal"
    withdrawn_message_id: UUID  # the version withdrawn: the current one of its notification
    police_reference: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_-]{1,40}$")]
    force: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    reason: WithdrawalReason = "sent_in_error"


class DeliveryWithdrawn(Contract):
    """To a recipient: a delivery it received is withdrawn by its sender; hide it. Content-free."""

    kind: Literal["delivery.withdrawn"] = "delivery.withdrawn"
    withdrawn_delivery_id: UUID
    source_message_id: UUID  # the version withdrawn
    recipient: OrgId
    withdrawn_by: OrgId  # the sender of the correction or withdrawal (``police:<force>``)
    reason: Literal["corrected", "withdrawn"]
    superseded_by: UUID | None = None  # the correcting version, for a correction
    withdrawn_at: Timestamp
