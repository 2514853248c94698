"""Pause, orthogonal to the phases: spec.paused or the sluice.dev/paused annotation freezes whichever gate a rollout
is in (phase Paused, the gate kept in status.pausedIn) and resuming continues in that gate. No phase handler knows
about pausing.
"""

from __future__ import annotations

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from sluice.core.plan import EventType
from sluice.core.rollout.order import GATES, enabled
from sluice.core.rollout.state import Decision


def follow_pause(decision: Decision) -> bool:
    """Pause or resume as the observations ask; whether the phase is to be left alone this round (paused, or
    just paused or resumed)."""
    status, paused = decision.status, decision.observations.paused
    if status.phase is Phase.PAUSED:
        if not paused:
            decision.enter(frozen_phase(decision.spec, status))
            where = decision.where()
            decision.event(EventType.NORMAL, "Resumed", f"rollout of {status.canary_version} resumed {where}")
        return True
    if paused and status.phase in GATES:
        decision.pause()
        decision.event(EventType.NORMAL, "Paused", f"rollout of {status.canary_version} paused {decision.where()}")
        return True
    return False


def frozen_phase(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Phase:
    """The gate a paused rollout continues in: status.pausedIn, or, for a status an operator before pausedIn
    wrote, the gate its recorded progress shows it had not passed yet."""
    if status.paused_in is not None:
        return status.paused_in
    if status.current_step is not None:
        return Phase.PROGRESSING
    validated = status.validation is not None and status.validation.passed
    if enabled(spec, Phase.VALIDATING) and not validated:
        return Phase.VALIDATING
    shadow = spec.rollout.shadow
    if shadow is not None and status.passed_checks < shadow.checks:
        return Phase.SHADOWING
    return Phase.PROGRESSING
