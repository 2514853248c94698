"""Where a replay of a rollout starts (`kubectl sluice analyze`'s what-if replay and the judge's bench): the rollout
at a step from a given time, both tracks running and ready, and (with a Gateway) its route accepted. A replay feeds
recorded or synthetic metrics to `decide` from there and judges only those: it assumes the traffic split happened."""

from __future__ import annotations

from datetime import datetime

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, ModelStatus, Phase
from sluice.core.conditions import ConditionStatus, set_condition
from sluice.core.plan import RouteReading, WorkloadState
from sluice.core.world import ROUTE_ACCEPTED, has_gateway

ACCEPTED_ROUTE = RouteReading(parents=1, accepted=1, refused=0)
"""What a replay observes of a Gateway route: accepted, so its weights moved the traffic the metrics recorded."""


def replay_start(
    spec: ModelDeploymentSpec, stable_model: ModelStatus, start: datetime, start_step: int = 0
) -> ModelDeploymentStatus:
    """A rollout of spec.model's version over `stable_model`, at step `start_step` from `start`."""
    status = ModelDeploymentStatus(
        observed_generation=1,
        phase=Phase.PROGRESSING,
        stable_version=stable_model.version,
        stable_model=stable_model,
        canary_version=spec.model.version,
        canary_weight=spec.rollout.steps[start_step],
        current_step=start_step,
        rollout_started_at=start,
        step_started_at=start,
    )
    if has_gateway(spec):
        status.conditions = set_condition(
            [],
            ROUTE_ACCEPTED,
            ConditionStatus.TRUE,
            reason="Accepted",
            message="assumed",
            now=start,
            observed_generation=1,
        )
    return status


def ready_track(version: str, replicas: int) -> WorkloadState:
    """A track's Deployment running `version`, every replica updated and ready."""
    return WorkloadState(
        exists=True,
        version=version,
        replicas=replicas,
        updated_replicas=replicas,
        ready_replicas=replicas,
        available=True,
    )
