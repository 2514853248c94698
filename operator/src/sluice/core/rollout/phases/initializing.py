"""Initializing: the first deploy; Stable once the stable Deployment runs the spec's revision."""

from __future__ import annotations

from sluice.api.v1alpha1 import Phase
from sluice.core.conditions import ConditionStatus
from sluice.core.plan import EventType
from sluice.core.rollout.state import Decision
from sluice.core.rollout.workloads import runs


def handle(decision: Decision) -> None:
    stable, status = decision.observations.stable, decision.status
    if stable.available and runs(stable, status.stable_revision):
        decision.enter(Phase.STABLE)
        message = f"{status.stable_version} deployed at {decision.spec.replicas} replicas"
        decision.set_progressing(ConditionStatus.FALSE, "Deployed", message)
        decision.event(EventType.NORMAL, "Deployed", message)
