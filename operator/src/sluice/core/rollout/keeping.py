"""rollout.keepPrevious: a promotion that keeps the previous revision's pods Ready, taking no traffic, for an
instant undo.

The cheapest way to keep them is not to replace them: the promotion moves all traffic to the canary Deployment,
which already runs the promoted revision (one route write), and leaves the stable Deployment on the previous
revision. The window (phase Promoted, `status.previous`) then holds both tracks at spec.replicas, whatever the
capacity mode (Neutral's saving ends at the last step: keeping a whole previous track is the room keepPrevious
asks for). Within the window, an undo (the spec set back to the previous revision) or a breach found by the
post-promotion analysis moves all traffic back to the stable Deployment, whose pods never stopped being Ready: one
route write, and the previous revision is stable again as it stands. When the window ends the stable Deployment
rolls to the promoted revision while the canary's pods serve, then the traffic moves back to it (one write) and
the canary scales to 0: the deferred half of a promotion without keepPrevious.
"""

from __future__ import annotations

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, Outcome, Phase, PreviousRevision
from sluice.core.conditions import ConditionStatus
from sluice.core.plan import EventType, WorkloadPlan
from sluice.core.rollout.state import Decision
from sluice.core.rollout.workloads import model_status, runs

UNDONE = "Undone"
"""Reason of an undo within the window (`kubectl sluice undo`)."""
ANALYSIS_FAILED = "PostPromotionAnalysisFailed"
"""Reason of the operator's own undo, when a post-promotion check breaks a bound."""


def keeps_previous(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> bool:
    """Whether a promotion keeps the previous revision: rollout.keepPrevious set (with a Gateway, as admission
    requires) and a stable revision recorded in full."""
    routed = spec.traffic is not None and spec.traffic.gateway is not None
    return spec.rollout.keep_previous is not None and routed and status.stable_model is not None


def window_open(decision: Decision) -> bool:
    """The previous revision's pods are kept: not released, and before status.previous.until."""
    previous = decision.status.previous
    return previous is not None and not previous.released and decision.now < previous.until


def kept_plans(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> tuple[WorkloadPlan, WorkloadPlan] | None:
    """The (stable, canary) Deployments while a promotion keeps the previous revision; None otherwise.

    Promoting: the stable Deployment stays on the previous revision and the canary grows to spec.replicas. Promoted,
    window open: the same templates (the kept pods run the previous revision, the canary's the promoted one, with
    the reference model it ran with, so no pod restarts). Window over: the stable Deployment rolls to the promoted
    revision."""
    stable_model = status.stable_model
    if stable_model is None:
        return None
    replicas = spec.replicas
    shadowed = spec.rollout.shadow is not None
    if status.phase is Phase.PROMOTING and keeps_previous(spec, status):
        stable = WorkloadPlan(model=stable_model, replicas=replicas, serving=status.stable_serving)
        reference = stable_model if shadowed else None
        canary = WorkloadPlan(model_status(spec.model), replicas, reference=reference, serving=spec.serving)
        return stable, canary
    previous = status.previous
    if status.phase is not Phase.PROMOTED or previous is None:
        return None
    reference = previous.model if shadowed else None
    canary = WorkloadPlan(stable_model, replicas, reference=reference, serving=status.stable_serving)
    if previous.released:
        return WorkloadPlan(model=stable_model, replicas=replicas, serving=status.stable_serving), canary
    return WorkloadPlan(model=previous.model, replicas=replicas, serving=previous.serving), canary


def take_traffic(decision: Decision) -> None:
    """Promoting with keepPrevious: once the canary runs the revision at spec.replicas, all of them available, and
    the stable Deployment still has all its pods, all traffic moves to the canary: the promotion."""
    spec, status, observed = decision.spec, decision.status, decision.observations
    canary, stable = observed.canary, observed.stable
    canary_full = runs(canary, status.canary_revision) and canary.available and canary.replicas == spec.replicas
    stable_full = runs(stable, status.stable_revision) and stable.available and stable.replicas == spec.replicas
    if canary_full and stable_full:
        _promote(decision)
    elif runs(canary, status.canary_revision) and canary.progress_deadline_exceeded:
        decision.roll_back(
            Outcome.ROLLED_BACK,
            "PromotionFailed",
            f"canary {status.canary_version} did not become available at {spec.replicas} replicas; "
            f"back to stable {status.stable_version}",
        )


def _promote(decision: Decision) -> None:
    spec, status, now = decision.spec, decision.status, decision.now
    stable_model, stable_revision, version = status.stable_model, status.stable_revision, status.stable_version
    if stable_model is None or stable_revision is None or version is None:
        return
    keep = parse_duration(spec.rollout.keep_previous or "0s")
    until = now + keep
    message = (
        f"{status.canary_version} promoted after {status.passed_checks} passed checks; it serves all traffic, and "
        f"the pods of previous revision {stable_revision.number} ({version}) are kept for keepPrevious "
        f"{spec.rollout.keep_previous} (ends {until.isoformat()})"
    )
    decision.end_rollout(Outcome.PROMOTED, "Promoted", message)
    status.previous = PreviousRevision(
        revision=stable_revision, version=version, model=stable_model, serving=status.stable_serving, since=now,
        until=until,
    )  # fmt: skip
    status.stable_model = model_status(spec.model)
    status.stable_serving = spec.serving
    status.stable_revision = status.canary_revision
    status.stable_version = status.canary_version
    decision.become_stable()
    decision.enter(Phase.PROMOTED)
    status.canary_weight = 100
    status.last_check_time = status.last_check = None
    status.passed_checks = status.failed_checks = status.inconclusive_checks = status.consecutive_errors = 0
    decision.set_progressing(ConditionStatus.TRUE, "KeepingPrevious", message)
    decision.event(EventType.NORMAL, "Promoted", message)


def release(decision: Decision, why: str) -> None:
    """End the window: the stable Deployment rolls to the promoted revision while the canary's pods serve."""
    previous = decision.status.previous
    if previous is None:
        return
    until = min(previous.until, decision.now)
    decision.status.previous = previous.model_copy(update={"released": True, "until": until})
    message = f"previous revision {previous.revision.number} ({previous.version}) released: {why}"
    decision.set_progressing(ConditionStatus.TRUE, "HandingBack", f"{message}; rolling the stable Deployment")
    decision.event(EventType.NORMAL, "PreviousReleased", message)


def hand_back(decision: Decision) -> None:
    """Window over: once the stable Deployment runs the promoted revision at spec.replicas, all available, the
    traffic moves back to it and the canary scales to 0."""
    spec, status, stable = decision.spec, decision.status, decision.observations.stable
    if not (runs(stable, status.stable_revision) and stable.available and stable.replicas == spec.replicas):
        return
    status.previous = None
    decision.become_stable()
    message = f"{status.stable_version} serves from the stable Deployment"
    decision.set_progressing(ConditionStatus.FALSE, "Promoted", message)
    decision.event(EventType.NORMAL, "HandedBack", message)


def undo(decision: Decision, reason: str, message: str) -> None:
    """All traffic back to the kept pods in one route write; the previous revision is stable again as it stands.

    An undo by hand (the spec names the previous revision) ends Stable; the operator's own (a post-promotion
    breach, the spec still naming the promoted revision) ends RolledBack, the promoted revision retryable."""
    status, previous = decision.status, decision.status.previous
    if previous is None:
        return
    status.canary_revision, status.canary_version = status.stable_revision, status.stable_version
    status.stable_revision, status.stable_version = previous.revision, previous.version
    status.stable_model, status.stable_serving = previous.model, previous.serving
    status.rollout_started_at = previous.since
    status.previous = None
    decision.end_rollout(Outcome.ROLLED_BACK_AFTER_PROMOTION, reason, message)
    if reason == UNDONE:
        decision.become_stable()
    else:
        decision.enter(Phase.ROLLED_BACK)
        decision.clear_rollout_position()
    decision.set_progressing(ConditionStatus.FALSE, reason, message)
    decision.event(EventType.WARNING, "RolledBackAfterPromotion", message)
