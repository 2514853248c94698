"""metav1.Condition helpers: set a condition, keeping lastTransitionTime while its status does not change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sluice.api.v1alpha1 import Condition

READY = "Ready"
"""The stable version serves traffic."""
PROGRESSING = "Progressing"
"""A rollout is under way (True), paused (Unknown), or none is (False; the reason tells how the last one ended)."""


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    return next((condition for condition in conditions if condition.type == condition_type), None)


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None,
) -> list[Condition]:
    """The conditions with `condition_type` set (replaced in place, or appended).

    lastTransitionTime stays as it was while the status is unchanged, and becomes `now` when it changes; a
    condition set to the values it already has is left exactly as it was.
    """
    previous = find_condition(conditions, condition_type)
    updated = Condition(
        type=condition_type,
        status=status,
        observed_generation=observed_generation,
        last_transition_time=now if previous is None or previous.status != status else previous.last_transition_time,
        reason=reason,
        message=message,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if condition.type == condition_type else condition for condition in conditions]
