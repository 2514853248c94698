"""What the world says beside the Deployments: pods that cannot start, an HTTPRoute its Gateways did not accept,
and the canary's actual share of requests. Pure: the adapter reads pods and the route (`adapters/world.py`), the
rollout core turns the readings into the PodsCanStart and RouteAccepted conditions (`rollout/world_conditions.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sluice.api.v1alpha1 import Condition, ModelDeploymentSpec, ModelDeploymentStatus
from sluice.core.conditions import ConditionStatus, find_condition
from sluice.core.plan import BlockedPods, Observations, RouteReading, WorkloadState

PODS_CAN_START = "PodsCanStart"
"""False while pods of the ModelDeployment cannot schedule, pull their image or start; the reason is Kubernetes'."""
ROUTE_ACCEPTED = "RouteAccepted"
"""With a Gateway: True once every parent of the HTTPRoute accepted it. No rollout step moves weight before."""

BLOCKING_REASONS = (
    "Unschedulable",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CrashLoopBackOff",
)
"""The pod condition (PodScheduled=False) and container waiting reasons that mean a pod cannot start by itself."""

ROUTE_GRACE = timedelta(seconds=30)
"""How long a parent of the HTTPRoute may stay silent (no status) before the route counts as not accepted."""
WORLD_POLL = timedelta(seconds=10)
"""How often to look again while a track's pods are not all ready, or the route is not accepted (pods are not
watched, and the grace ends without any event)."""

ConditionText = tuple[ConditionStatus, str, str]


def has_gateway(spec: ModelDeploymentSpec) -> bool:
    return spec.traffic is not None and spec.traffic.gateway is not None


def pods_due(stable: WorkloadState, canary: WorkloadState) -> bool:
    """Whether the adapter should list the pods: a track runs replicas that are not all ready."""
    return any(track.exists and track.replicas > 0 and not track.available for track in (stable, canary))


def route_holds(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> bool:
    """With a Gateway, whether the weight holds: the RouteAccepted condition is not True."""
    if not has_gateway(spec):
        return False
    accepted = find_condition(status.conditions, ROUTE_ACCEPTED)
    return accepted is None or accepted.status != ConditionStatus.TRUE


def actual_weight(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, stable: WorkloadState, canary: WorkloadState
) -> int | None:
    """The canary's share of requests in percent: with a Gateway, the route's weight once every parent accepted it
    (None before); else the canary's share of the ready pods behind the one Service (None when none is ready)."""
    if has_gateway(spec):
        return None if route_holds(spec, status) else status.canary_weight
    total = stable.ready_replicas + canary.ready_replicas
    return round(100 * canary.ready_replicas / total) if total > 0 else None


def blocked_pods(reasons: Sequence[str | None]) -> BlockedPods | None:
    """The blocked pods among pods with these reasons (None: a pod not blocked), named by the most common reason."""
    blocking = [reason for reason in reasons if reason in BLOCKING_REASONS]
    if not blocking:
        return None
    most = max(BLOCKING_REASONS, key=blocking.count)
    return BlockedPods(reason=most, count=len(blocking))


def pods_text(blocked: BlockedPods) -> str:
    """`2 pods cannot start (Unschedulable)`: fixed words, a count and a reason from BLOCKING_REASONS."""
    return f"{blocked.count} pod{'s' if blocked.count != 1 else ''} cannot start ({blocked.reason})"


def pods_condition(blocked: BlockedPods | None) -> ConditionText:
    if blocked is None:
        return ConditionStatus.TRUE, "NoPodBlocked", "no pod is blocked from scheduling or starting"
    hint = "`kubectl describe pods` shows the scheduler's or the kubelet's message"
    return ConditionStatus.FALSE, blocked.reason, f"{pods_text(blocked)}; {hint}"


def route_condition(reading: RouteReading | None, previous: Condition | None, now: datetime) -> ConditionText:
    """RouteAccepted from the route's parents; a parent silent for ROUTE_GRACE counts as not accepting."""
    if reading is None:
        return ConditionStatus.UNKNOWN, "Pending", "the HTTPRoute is not written yet"
    parents = reading.parents
    if parents > 0 and reading.accepted >= parents:
        return ConditionStatus.TRUE, "Accepted", f"HTTPRoute accepted by {parents} of {parents} parents"
    holding = "its weights move no traffic, so no step moves the canary's weight"
    if reading.refused > 0:
        refused = f"{reading.refused} of {parents} parents refused the HTTPRoute"
        return ConditionStatus.FALSE, reading.reason or "NotAccepted", f"{refused}: {holding}"
    silent = parents - reading.accepted
    refused_before = previous is not None and previous.status == ConditionStatus.FALSE
    waited = previous is not None and previous.status == ConditionStatus.UNKNOWN
    if refused_before or (waited and previous is not None and now - previous.last_transition_time >= ROUTE_GRACE):
        grace = int(ROUTE_GRACE.total_seconds())
        message = f"{silent} of {parents} parents did not accept the HTTPRoute within {grace}s (is there a Gateway?)"
        return ConditionStatus.FALSE, "NoParentStatus", f"{message}: {holding}"
    return ConditionStatus.UNKNOWN, "Pending", f"waiting for {silent} of {parents} parents to accept the HTTPRoute"


def poll_after(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observations: Observations, wait: timedelta | None
) -> timedelta | None:
    """`wait`, shortened to WORLD_POLL while pods are worth listing or the route holds the weight."""
    if not (pods_due(observations.stable, observations.canary) or route_holds(spec, status)):
        return wait
    return WORLD_POLL if wait is None else min(wait, WORLD_POLL)
