"""Following spec.model.version: the first deploy, a new rollout, a superseded canary, a revert to stable."""

from __future__ import annotations

from sluice.api.v1alpha1 import Outcome, Phase
from sluice.core.conditions import ConditionStatus
from sluice.core.plan import EventType
from sluice.core.rollout.order import ROLLOUT_PHASES
from sluice.core.rollout.state import Decision
from sluice.core.rollout.workloads import model_status


def follow_spec_version(decision: Decision) -> None:
    status, version = decision.status, decision.spec.model.version
    if status.stable_model is None or status.phase in (None, Phase.INITIALIZING):
        # First deploy: nothing serves yet, so the stable track simply follows spec.model.
        decision.enter(Phase.INITIALIZING)
        status.stable_model = model_status(decision.spec.model)
        status.stable_version = version
    elif status.phase in ROLLOUT_PHASES and version != status.canary_version:
        if version == status.stable_version:
            _revert_to_stable(decision)
        else:
            _supersede(decision)
    elif status.phase is Phase.STABLE and version != status.stable_version:
        decision.start_rollout(f"rolling out {version}")
    elif status.phase is Phase.ROLLED_BACK and version != status.canary_version:
        # The rolled-back version stays rolled back until retried; another version starts afresh.
        if version == status.stable_version:
            decision.become_stable()
        else:
            decision.start_rollout(f"rolling out {version}")


def _revert_to_stable(decision: Decision) -> None:
    """spec.model.version set back to the stable version: the rollout ends as Aborted, the stable stays."""
    status = decision.status
    message = f"rollout of {status.canary_version} ended: spec.model.version set back to {status.stable_version}"
    decision.end_rollout(Outcome.ABORTED, "RevertedToStable", message)
    decision.become_stable()
    decision.set_progressing(ConditionStatus.FALSE, "RevertedToStable", message)
    decision.event(EventType.NORMAL, "RevertedToStable", message)


def _supersede(decision: Decision) -> None:
    """A new version mid-rollout replaces the canary; its rollout starts from the current stable."""
    old, new = decision.status.canary_version, decision.spec.model.version
    message = f"rollout of {old} superseded by {new} {decision.where()}"
    decision.end_rollout(Outcome.SUPERSEDED, "Superseded", message)
    decision.event(EventType.NORMAL, "Superseded", message)
    decision.start_rollout(f"rolling out {new}")
