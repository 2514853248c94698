"""The status fields that report what is observed rather than decided: observedGeneration, readyReplicas, and the
Ready, Progressing, Reconciling and Stalled conditions."""

from __future__ import annotations

from sluice.api.v1alpha1 import Phase
from sluice.core.conditions import READY, kstatus_conditions, set_condition
from sluice.core.rollout import texts
from sluice.core.rollout.mirror import mirror_hold
from sluice.core.rollout.order import ROLLOUT_PHASES
from sluice.core.rollout.state import Decision


def refresh_observed_state(decision: Decision) -> None:
    """observedGeneration, readyReplicas, the Ready condition, and Progressing while a rollout is live."""
    status, observations, now = decision.status, decision.observations, decision.now
    status.observed_generation = observations.generation
    status.ready_replicas = observations.stable.ready_replicas
    ready, reason, message = texts.stable_readiness(observations.stable, status.stable_version)
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
    if live:
        held = mirror_hold(decision.spec, status, observations.gateways)
        decision.set_progressing(*(held or texts.live_progress(decision.spec, status)))
    status.conditions = kstatus_conditions(
        status.conditions,
        rolling_out=live,
        rolled_back=status.phase is Phase.ROLLED_BACK,
        now=now,
        observed_generation=observations.generation,
    )
