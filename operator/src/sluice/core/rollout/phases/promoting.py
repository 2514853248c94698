"""Promoting: the stable Deployment rolls to the canary's revision; Stable once it is available. With
rollout.keepPrevious the canary takes all traffic instead, the stable Deployment kept (`keeping.take_traffic`)."""

from __future__ import annotations

from sluice.api.v1alpha1 import Outcome
from sluice.core.conditions import ConditionStatus
from sluice.core.plan import EventType
from sluice.core.rollout.keeping import keeps_previous, take_traffic
from sluice.core.rollout.state import Decision
from sluice.core.rollout.workloads import model_status, runs


def handle(decision: Decision) -> None:
    stable, status = decision.observations.stable, decision.status
    if keeps_previous(decision.spec, status):
        take_traffic(decision)
        return
    version = status.canary_version
    if not runs(stable, status.canary_revision):
        return
    if stable.available:
        message = f"{version} promoted after {status.passed_checks} passed checks; it is now stable"
        decision.end_rollout(Outcome.PROMOTED, "Promoted", message)
        status.stable_model = model_status(decision.spec.model)
        status.stable_serving = decision.spec.serving
        status.stable_revision = status.canary_revision
        status.stable_version = version
        decision.become_stable()
        decision.set_progressing(ConditionStatus.FALSE, "Promoted", message)
        decision.event(EventType.NORMAL, "Promoted", message)
    elif stable.progress_deadline_exceeded:
        decision.roll_back(
            Outcome.ROLLED_BACK,
            "PromotionFailed",
            f"stable Deployment did not become available with {version}; back to stable {status.stable_version}",
        )
