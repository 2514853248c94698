"""The status fields that report what is observed rather than decided: observedGeneration, readyReplicas,
actualWeight, and the Ready, Progressing, Reconciling and Stalled conditions."""

from __future__ import annotations

from sluice.api.v1alpha1 import Phase
from sluice.core.conditions import READY, ConditionStatus, kstatus_conditions, set_condition
from sluice.core.rollout import texts
from sluice.core.rollout.mirror import mirror_hold
from sluice.core.rollout.order import ROLLOUT_PHASES
from sluice.core.rollout.state import Decision
from sluice.core.world import actual_weight, pods_text


def refresh_observed_state(decision: Decision) -> None:
    """observedGeneration, readyReplicas, actualWeight, the Ready condition, and Progressing while a rollout is
    live. A first deploy past its progress deadline is no longer in progress: Progressing False, Stalled True."""
    status, observations, now = decision.status, decision.observations, decision.now
    status.observed_generation = observations.generation
    # Promoted (rollout.keepPrevious): the stable version serves from the canary's pods
    serving = observations.canary if status.phase is Phase.PROMOTED else observations.stable
    status.ready_replicas = serving.ready_replicas
    status.actual_weight = actual_weight(decision.spec, status, observations.stable, observations.canary)
    ready, reason, message = texts.stable_readiness(serving, status.stable_version)
    if observations.blocked_pods is not None and ready is not ConditionStatus.TRUE:
        message = f"{message}; {pods_text(observations.blocked_pods)}"
    status.conditions = set_condition(
        status.conditions,
        READY,
        ready,
        reason=reason,
        message=message,
        now=now,
        observed_generation=observations.generation,
    )
    live = status.phase in (*ROLLOUT_PHASES, Phase.INITIALIZING)
    failed_deploy = status.phase is Phase.INITIALIZING and observations.stable.progress_deadline_exceeded
    if failed_deploy:
        decision.set_progressing(ConditionStatus.FALSE, "ProgressDeadlineExceeded", message)
    elif live:
        held = mirror_hold(decision.spec, status, observations.gateways)
        decision.set_progressing(*(held or texts.live_progress(decision.spec, status)))
    status.conditions = kstatus_conditions(
        status.conditions,
        rolling_out=live and not failed_deploy,
        rolled_back=status.phase is Phase.ROLLED_BACK,
        now=now,
        observed_generation=observations.generation,
    )
