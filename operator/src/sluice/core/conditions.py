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
RECONCILING = "Reconciling"
"""kstatus: the operator is still working towards the spec (a deploy or rollout under way, or a paused one, or the
stable Deployment not yet available). GitOps tools read True as in progress."""
STALLED = "Stalled"
"""kstatus: the spec cannot be reached without someone acting (invalid spec, a rolled-back version, the stable
Deployment past its progress deadline). GitOps tools read True as failed."""


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


def kstatus_conditions(
    conditions: Sequence[Condition],
    *,
    rolling_out: bool,
    rolled_back: bool,
    now: datetime,
    observed_generation: int | None,
) -> list[Condition]:
    """The conditions with Reconciling and Stalled set for kstatus (Flux, `kubectl wait`, cli-utils), from the Ready
    and Progressing conditions already set: `rolling_out` (a deploy or rollout under way or paused) is Reconciling
    with Progressing's reason; `rolled_back` (the spec's version was rolled back and stays so until retried or
    changed) is Stalled with the rollback's reason, and so is a rollout held until someone acts (Progressing=False:
    a shadow phase behind a Gateway without RequestMirror); Ready=False for InvalidSpec or ProgressDeadlineExceeded
    is Stalled; another unavailable stable (StableUpdating, StableUnavailable) is Reconciling."""
    ready, progressing = find_condition(conditions, READY), find_condition(conditions, PROGRESSING)
    reconciling: tuple[str, str] | None = None
    stalled: tuple[str, str] | None = None
    if ready is not None and ready.reason in _STALLED_READY_REASONS:
        stalled = (ready.reason, ready.message)
    elif rolled_back:
        stalled = (progressing.reason, progressing.message) if progressing else ("RolledBack", "rolled back")
    elif rolling_out and progressing is not None and progressing.status == ConditionStatus.FALSE:
        stalled = (progressing.reason, progressing.message)
    elif rolling_out:
        reconciling = (progressing.reason, progressing.message) if progressing else ("Progressing", "rolling out")
    elif ready is not None and ready.reason in _UPDATING_READY_REASONS:
        reconciling = (ready.reason, ready.message)
    updated = list(conditions)
    for condition_type, value, idle in (
        (RECONCILING, reconciling, ("Reconciled", "the children match the spec")),
        (STALLED, stalled, ("NotStalled", "nothing blocks progress")),
    ):
        reason, message = value or idle
        updated = set_condition(
            updated,
            condition_type,
            ConditionStatus.TRUE if value else ConditionStatus.FALSE,
            reason=reason,
            message=message,
            now=now,
            observed_generation=observed_generation,
        )
    return updated


_STALLED_READY_REASONS = frozenset({"InvalidSpec", "ProgressDeadlineExceeded"})
_UPDATING_READY_REASONS = frozenset({"StableUpdating", "StableUnavailable"})
