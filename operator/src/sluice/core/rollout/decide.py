"""`decide`: (spec, status, observations, now) → `Plan`, by rounds of transitions until the status settles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from sluice.core.experiment import assignment
from sluice.core.plan import Observations, Plan, WorkloadPlan
from sluice.core.rollout.actions import handle_action
from sluice.core.rollout.autoscaling import autoscaled_floors, canary_bounds, stable_bounds
from sluice.core.rollout.capacity import track_replicas
from sluice.core.rollout.keeping import kept_plans
from sluice.core.rollout.mirror import held_wait, mirror_allowed, mirror_hold
from sluice.core.rollout.observed import refresh_observed_state
from sluice.core.rollout.pause import follow_pause
from sluice.core.rollout.phases import (
    experimenting,
    initializing,
    progressing,
    promoted,
    promoting,
    shadowing,
    validating,
)
from sluice.core.rollout.revisions import stable_track_serving
from sluice.core.rollout.schedule import requeue_after
from sluice.core.rollout.state import Decision
from sluice.core.rollout.versions import follow_spec_revision
from sluice.core.rollout.workloads import canary_matches, canary_plan, mirror_percent, stable_model
from sluice.core.rollout.world_conditions import observe_world
from sluice.core.world import poll_after

_MAX_TRANSITIONS_PER_DECISION = 8
"""Bound on chained transitions in one decision (the longest chain, e.g. supersede, start, canary ready, is 4)."""

PHASE_HANDLERS: dict[Phase, Callable[[Decision], None]] = {
    Phase.INITIALIZING: initializing.handle,
    Phase.VALIDATING: validating.handle,
    Phase.SHADOWING: shadowing.handle,
    Phase.PROGRESSING: progressing.handle,
    Phase.EXPERIMENTING: experimenting.handle,
    Phase.PROMOTING: promoting.handle,
    Phase.PROMOTED: promoted.handle,
}
"""What each phase does in a round. Stable and RolledBack wait for a new version or an action; Paused for a
resume."""


def decide(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observations: Observations, now: datetime) -> Plan:
    """The next status, the workloads and traffic split to run, the events to emit, and when to look again.

    Transitions chain within one call until the status settles (a first deploy whose Deployment is already
    available becomes Stable at once), so decide is idempotent: deciding again on the returned status with the
    same observations and `now` gives the same plan and no events.
    """
    decision = Decision(spec, observations, now, status.model_copy(deep=True))
    observe_world(decision)
    for _ in range(_MAX_TRANSITIONS_PER_DECISION):
        before = decision.status.model_copy(deep=True)
        _round(decision)
        if decision.status == before:
            break
    refresh_observed_state(decision)
    settled = decision.status
    stable, canary = kept_plans(spec, settled) or _track_plans(spec, settled, observations)
    wait = poll_after(spec, settled, observations, requeue_after(spec, settled, now))
    if mirror_hold(spec, settled, observations.gateways) is not None:
        wait = held_wait(spec, wait)
    return Plan(
        status=settled,
        stable=stable,
        canary=canary,
        canary_weight=settled.canary_weight,
        mirror_percent=mirror_percent(spec, settled) if mirror_allowed(observations.gateways) else 0,
        canary_matches=canary_matches(spec, settled),
        events=tuple(decision.events),
        requeue_after=wait,
    )


def _track_plans(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observations: Observations
) -> tuple[WorkloadPlan, WorkloadPlan | None]:
    """The stable and canary Deployments outside a promotion that keeps the previous revision, with their
    HorizontalPodAutoscalers' bounds under spec.autoscaling."""
    stable_replicas, canary_replicas = track_replicas(spec, status, observations.stable, observations.canary)
    stable_hpa, canary_hpa = stable_bounds(spec, status, observations.canary), canary_bounds(spec, status)
    if spec.autoscaling is not None:
        stable_replicas, canary_replicas = autoscaled_floors(spec, status, observations.stable, observations.canary)
    stable = WorkloadPlan(
        model=stable_model(spec, status),
        replicas=stable_replicas,
        serving=stable_track_serving(spec, status),
        autoscaling=stable_hpa,
        assignment=assignment(spec, status),
    )
    return stable, canary_plan(spec, status, observations.canary, canary_replicas, canary_hpa)


def _round(decision: Decision) -> None:
    """Follow the spec's revision, handle a new manual action, pause or resume, then act on the phase."""
    follow_spec_revision(decision)
    handle_action(decision)
    if follow_pause(decision):
        return
    handler = PHASE_HANDLERS.get(decision.status.phase) if decision.status.phase is not None else None
    if handler is not None:
        handler(decision)
