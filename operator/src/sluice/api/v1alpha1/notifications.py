"""spec.notifications (which receivers hear of a rollout, and of which events) and status.notifications (what was
delivered). A receiver is only a name: its webhook URL lives in the one Secret the operator's admin names
(docs/notifications.md), never in a ModelDeployment."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from sluice.api.v1alpha1.meta import ApiModel

RECEIVER_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A receiver name: a DNS label (lowercase letters, digits, dashes), the key of its URL in the notification Secret."""
MAX_RECEIVERS = 8


class RolloutEvent(StrEnum):
    """A rollout event sent to receivers."""

    STARTED = "Started"
    STEP_PASSED = "StepPassed"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"


ReceiverName = Annotated[str, Field(min_length=1, max_length=63, pattern=RECEIVER_PATTERN)]


class NotificationsSpec(ApiModel):
    """Webhook notifications of this ModelDeployment's rollouts, by receiver name."""

    receivers: list[ReceiverName] = Field(
        default_factory=list,
        max_length=MAX_RECEIVERS,
        description="Receivers to notify: keys of the operator's notification Secret (its URL and body format are "
        "there, not here). Empty: none, not even the operator's default receivers.",
        examples=[["ml-team"]],
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    events: list[RolloutEvent] | None = Field(
        default=None,
        max_length=len(RolloutEvent),
        description="Events to send: Started, StepPassed, Paused, Promoted, RolledBack; all when left out.",
        examples=[["Promoted", "RolledBack"]],
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class NotificationCounts(ApiModel):
    """Notifications of this ModelDeployment's rollout events, counted by how their delivery ended."""

    delivered: int = Field(default=0, ge=0, description="Accepted by their receiver (HTTP 2xx).")
    failed: int = Field(
        default=0, ge=0, description="Given up: refused, or still failing after the operator's retries."
    )
    dropped: int = Field(default=0, ge=0, description="Dropped unsent because the receiver's queue was full.")
