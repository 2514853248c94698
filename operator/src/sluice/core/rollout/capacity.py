"""The replicas each track runs: with capacity Surge (the default) stable runs spec.replicas and the canary its own;
with capacity Neutral the canary's pods are taken from stable one at a time, so that the two tracks together never
have fewer than spec.replicas Ready pods nor more than one pod over spec.replicas.

Neutral: the canary grows by one pod beyond those Ready, up to its target (`canary_replicas`; 0 outside a
rollout), and keeps every pod stable's Ready pods do not yet replace; stable runs spec.replicas minus the canary's
Ready pods (never fewer than spec.replicas minus the target, nor than one), within one pod over spec.replicas in
all. A stable pod therefore leaves only once a canary pod has taken its place, and after a rollout (promoted,
rolled back, superseded) the canary's pods go only as stable's come back. A track grows only into room the other
has already left, counting the pods its ReplicaSets still run, not its spec's replicas.
"""

from __future__ import annotations

from sluice.api.v1alpha1 import Capacity, ModelDeploymentSpec, ModelDeploymentStatus
from sluice.core.plan import WorkloadState
from sluice.core.rollout.workloads import canary_replicas


def track_replicas(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, stable: WorkloadState, canary: WorkloadState
) -> tuple[int, int]:
    """(stable, canary) replicas to run, given the observed Deployments."""
    target = canary_replicas(spec, status)
    replicas = spec.replicas
    if spec.rollout.capacity is not Capacity.NEUTRAL:
        return replicas, target
    ready = min(canary.ready_replicas, target)
    still_needed = min(canary.replicas, max(0, replicas - stable.ready_replicas))
    canary_count = max(min(target, ready + 1), still_needed)
    stable_count = min(max(replicas - ready, replicas - target, min(replicas, 1)), replicas + 1 - canary_count)
    # A track grows only into room the other has already left: the two Deployments' controllers act on their own,
    # so a canary shrinking while stable grows in the same reconcile would briefly run one pod too many.
    canary_count = _grown_into_room(canary_count, canary, max(stable_count, _pods(stable)), replicas)
    stable_count = _grown_into_room(stable_count, stable, max(canary_count, _pods(canary)), replicas)
    return stable_count, canary_count


def _pods(track: WorkloadState) -> int:
    """The pods a track runs or is about to: its spec's replicas, or more while some are still going."""
    return max(track.replicas, track.pods)


def _grown_into_room(wanted: int, track: WorkloadState, other: int, replicas: int) -> int:
    """`wanted`, unless it grows the track past what leaves the two tracks within one pod over `replicas`."""
    current = _pods(track)
    return wanted if wanted <= current else max(current, min(wanted, replicas + 1 - other))
