"""spec.autoscaling: the bounds of each track's HorizontalPodAutoscaler, and the few counts sluice itself sets.

The canary's HPA exists while a canary runs; its bounds are the canary's share of minReplicas and maxReplicas for
its weight (`canary_share`, at least 1): with a Gateway, ceil(bound * weight / 100); by replica ratio, the
replicas that give the weight's share beside `bound` stable pods; with capacity Neutral, its Neutral share. The
stable HPA keeps minReplicas..maxReplicas, except with capacity Neutral during the live steps, where its bounds
shrink by the canary's Ready pods (a stable pod goes only once a canary pod has taken its place).

An HPA owns its Deployment's replicas: sluice sets them only when a Deployment is created (or runs none), and at
promotion, where the stable Deployment, about to roll to the promoted revision, is raised to at least its current
count (plus the canary's Ready pods with capacity Neutral) and minReplicas (`hand_over`). It never lowers them.
"""

from __future__ import annotations

from sluice.api.v1alpha1 import Capacity, ModelDeploymentSpec, ModelDeploymentStatus, Phase
from sluice.core.plan import ReplicaBounds, WorkloadState
from sluice.core.rollout.workloads import (
    canary_replicas,
    canary_replicas_for_weight,
    first_share,
    neutral_canary_replicas,
    runs,
)


def canary_share(spec: ModelDeploymentSpec, weight: int, bound: int) -> int:
    """The canary's share of `bound` replicas at `weight` percent, at least 1."""
    if spec.rollout.capacity is Capacity.NEUTRAL:
        return neutral_canary_replicas(weight, bound)
    if spec.traffic is not None and spec.traffic.gateway is not None:
        return max(1, (bound * weight + 99) // 100)
    return max(1, canary_replicas_for_weight(weight, bound))


def _weight(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int:
    """The canary's weight, or the first step's while the canary starts (an experiment's split throughout)."""
    return status.canary_weight if status.current_step is not None else first_share(spec)


def canary_bounds(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ReplicaBounds | None:
    """The canary HPA's bounds; None without spec.autoscaling or while no canary runs."""
    autoscaling = spec.autoscaling
    if autoscaling is None or canary_replicas(spec, status) == 0:
        return None
    weight = _weight(spec, status)
    low = canary_share(spec, weight, autoscaling.min_replicas)
    return ReplicaBounds(low, max(low, canary_share(spec, weight, autoscaling.max_replicas)))


def stable_bounds(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary: WorkloadState
) -> ReplicaBounds | None:
    """The stable HPA's bounds; None without spec.autoscaling."""
    autoscaling = spec.autoscaling
    if autoscaling is None:
        return None
    share = canary_bounds(spec, status)
    if share is None or spec.rollout.capacity is not Capacity.NEUTRAL or status.phase is Phase.PROMOTING:
        return ReplicaBounds(autoscaling.min_replicas, autoscaling.max_replicas)
    low = max(1, autoscaling.min_replicas - min(canary.ready_replicas, share.min_replicas))
    high = max(low, autoscaling.max_replicas - min(canary.ready_replicas, share.max_replicas))
    return ReplicaBounds(low, high)


def _clamp(count: int, bounds: ReplicaBounds) -> int:
    return min(max(count, bounds.min_replicas), bounds.max_replicas)


def hand_over(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, stable: WorkloadState, canary: WorkloadState
) -> int:
    """What the stable Deployment must run at least when promotion rolls it to the canary's revision: its current
    count, plus the canary's Ready pods with capacity Neutral (they were taken from stable), within the bounds."""
    autoscaling = spec.autoscaling
    if autoscaling is None or status.phase is not Phase.PROMOTING or runs(stable, status.canary_revision):
        return 0
    taken = canary.ready_replicas if spec.rollout.capacity is Capacity.NEUTRAL else 0
    return _clamp(stable.replicas + taken, ReplicaBounds(autoscaling.min_replicas, autoscaling.max_replicas))


def autoscaled_floors(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, stable: WorkloadState, canary: WorkloadState
) -> tuple[int, int]:
    """(stable, canary) counts sluice sets on autoscaled Deployments (0: leave them to their HPA): the first count
    of a Deployment that runs none (stable: spec.replicas; canary: its share of stable's current count), and the
    promotion's hand-over."""
    stable_floor = canary_floor = 0
    bounds = stable_bounds(spec, status, canary)
    if bounds is not None and stable.replicas == 0:
        stable_floor = _clamp(spec.replicas, bounds)
    elif bounds is not None:
        stable_floor = hand_over(spec, status, stable, canary)
    share = canary_bounds(spec, status)
    if share is not None and canary.replicas == 0:
        canary_floor = _clamp(canary_share(spec, _weight(spec, status), max(1, stable.replicas)), share)
    return stable_floor, canary_floor
