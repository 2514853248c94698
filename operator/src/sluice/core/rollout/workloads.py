"""What the Deployments run for a status: the models, the canary's replicas, the share of mirrored requests, the
requests the route sends to the canary alone."""

from __future__ import annotations

from sluice.api.v1alpha1 import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSpec,
    ModelStatus,
    Phase,
    RevisionRef,
    RouteMatch,
)
from sluice.api.v1alpha1.rollout import Capacity
from sluice.core.plan import ReplicaBounds, WorkloadPlan, WorkloadState
from sluice.core.rollout.order import ROLLOUT_PHASES
from sluice.core.world import has_gateway

MAX_REPLICA_RATIO = 9
"""Replica-ratio routing runs at most this many canary replicas per stable replica (a 90% share)."""


def model_status(model: ModelSpec) -> ModelStatus:
    return ModelStatus(version=model.version, uri=model.uri, format=model.format, digest=model.digest)


def mirror_percent(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int:
    """Requests copied to the canary: shadow.percent once the shadow phase has started (its canary ready)."""
    shadow = spec.rollout.shadow
    if shadow is None or status.phase is not Phase.SHADOWING or status.step_started_at is None:
        return 0
    return shadow.percent


def canary_matches(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> tuple[RouteMatch, ...]:
    """Requests the HTTPRoute sends to the canary alone (spec.rollout.match): from the first live step (the canary
    ready, past the validation and shadow gates) through every step, a pause and the promotion, until the
    rollout ends (Stable or RolledBack, when the weight goes to 0 in the same route write)."""
    if not has_gateway(spec) or status.current_step is None:
        return ()
    return tuple(spec.rollout.match or ())


def canary_replicas_for_weight(weight: int, stable_replicas: int) -> int:
    """Canary replicas giving the canary about `weight` percent of requests when one Service spreads requests
    evenly over stable and canary pods (routing without a gateway).

    canary = round(weight * stable / (100 - weight)), halves rounded up, then at least 1 and at most
    `MAX_REPLICA_RATIO` * stable (weights above 90, 100 included, get a 90% share: the stable pods stay behind
    the Service). 0 when the weight is 0, or when stable runs no replicas (nothing is served, so no canary runs).
    """
    if weight <= 0 or stable_replicas <= 0:
        return 0
    ceiling = MAX_REPLICA_RATIO * stable_replicas
    if weight >= 100:
        return ceiling
    rounded_half_up = (2 * weight * stable_replicas + (100 - weight)) // (2 * (100 - weight))
    return min(max(1, rounded_half_up), ceiling)


def stable_model(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ModelStatus:
    """While promoting, the stable Deployment rolls to the canary's model (spec.model)."""
    if status.phase is Phase.PROMOTING or status.stable_model is None:
        return model_status(spec.model)
    return status.stable_model


def canary_plan(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    canary: WorkloadState,
    replicas: int,
    autoscaling: ReplicaBounds | None = None,
) -> WorkloadPlan | None:
    if status.canary_version is None and not status.history and not canary.exists:
        return None
    reference = status.stable_model if spec.rollout.shadow is not None else None
    model = model_status(spec.model)
    return WorkloadPlan(model, replicas, reference=reference, serving=spec.serving, autoscaling=autoscaling)


def canary_replicas(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int:
    """Gateway routing: the canary runs spec.replicas. Replica ratio: replicas approximate the weight; while the
    canary starts they are the first step's, which take their share as soon as they are ready (so a rollout paused
    before its canary was ready runs none). Capacity Neutral: the weight's share of spec.replicas (at least 1, at
    most all but one), taken from stable (`sluice.core.rollout.capacity`)."""
    if status.phase not in ROLLOUT_PHASES:
        return 0
    if spec.rollout.capacity is Capacity.NEUTRAL:
        if status.current_step is None:
            frozen = status.phase is Phase.PAUSED and status.paused_in is Phase.PROGRESSING
            return 0 if frozen else neutral_canary_replicas(first_share(spec), spec.replicas)
        return neutral_canary_replicas(status.canary_weight, spec.replicas)
    if spec.traffic is not None and spec.traffic.gateway is not None:
        return spec.replicas
    starting = status.current_step is None and status.phase is Phase.PROGRESSING
    weight = spec.rollout.steps[0] if starting else status.canary_weight
    return canary_replicas_for_weight(weight, spec.replicas)


def first_share(spec: ModelDeploymentSpec) -> int:
    """The canary's share of requests before its first step: the first step's weight, or an experiment's split
    (its share of entity keys, served through the stable pods)."""
    return spec.experiment.split if spec.experiment is not None else spec.rollout.steps[0]


def neutral_canary_replicas(weight: int, replicas: int) -> int:
    """The canary's share of `replicas` pods for `weight` (halves rounded up), at least 1 and at most all but one
    (one stable pod serves while the weight is below 100; with 1 replica the canary's pod is the one more)."""
    if replicas <= 0:
        return 0
    share = (2 * weight * replicas + 100) // 200
    return min(max(1, share), max(1, replicas - 1))


def canary_ready(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary: WorkloadState) -> bool:
    """The canary Deployment runs this revision at the planned replicas (with spec.autoscaling, at any its HPA
    sets), all available (a Deployment left at 0 replicas by an earlier rollout of the same revision does not
    count)."""
    planned = canary.replicas >= 1 if spec.autoscaling is not None else canary.replicas == canary_replicas(spec, status)
    return canary.available and runs(canary, status.canary_revision) and planned


def runs(workload: WorkloadState, revision: RevisionRef | None) -> bool:
    """Whether a Deployment's template is this revision's (annotation sluice.dev/revision)."""
    return revision is not None and workload.revision == revision.hash
