"""The words of a rollout: where it is, its Ready and Progressing conditions, and its longer Event messages.

Pure functions of (spec, status, observations); the transitions decide, this module only says.
"""

from __future__ import annotations

from sluice.api.v1alpha1 import (
    CheckResult,
    InconclusivePolicy,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
    Verdict,
)
from sluice.core.analysis import summary
from sluice.core.conditions import ConditionStatus
from sluice.core.plan import WorkloadState
from sluice.core.rollout.order import gates_before_steps
from sluice.core.rollout.schedule import judging, next_check_at
from sluice.core.world import route_holds

ConditionText = tuple[ConditionStatus, str, str]
"""A condition's status, reason and message."""


def where(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> str:
    """`at step 2/3 (25%)`, `in the shadow phase (weight 0)`, or `before the canary was ready`."""
    step = status.current_step
    if status.phase is Phase.PROMOTED:
        return "after promotion (100%)"
    if step is None and status.phase is Phase.VALIDATING:
        return "at the validation gate (weight 0)"
    if step is None and status.phase is Phase.SHADOWING and status.step_started_at is not None:
        return "in the shadow phase (weight 0)"
    if step is None and status.experiment is not None and status.experiment.started_at is not None:
        return f"in the experiment ({status.experiment.split}% of entity keys on the candidate)"
    if step is None:
        return "before the canary was ready"
    return f"at step {step + 1}/{len(spec.rollout.steps)} ({status.canary_weight}%)"


def rollout_started(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, why: str) -> str:
    steps = ", ".join(f"{weight}%" for weight in spec.rollout.steps)
    gates = gates_before_steps(spec)
    first = f"{' then '.join(gates)}, then " if gates else ""
    stable = f"stable {status.stable_version}"
    if spec.experiment is not None:
        split, header = spec.experiment.split, spec.experiment.sticky_by.header
        return f"{why}: {first}an experiment, {split}% of entity keys (header {header}) on it; {stable} serves the rest"
    return f"{why}: {first}steps {steps} every {spec.rollout.interval}; {stable} keeps serving"


def check_message(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, check: CheckResult) -> str:
    metrics = "; ".join(dict.fromkeys(metric.message for metric in check.metrics))  # an error once, not per metric
    return f"{check.verdict} {where(spec, status)}: {metrics}"


def stable_readiness(stable: WorkloadState, stable_version: str | None) -> ConditionText:
    """The Ready condition: how the stable Deployment serves."""
    counts = f"{stable.ready_replicas}/{stable.replicas} replicas ready"
    version = stable.version or stable_version
    if stable.exists and stable.available and stable.replicas == 0:
        return ConditionStatus.FALSE, "ScaledToZero", f"stable {version} runs no replicas"
    if stable.available:
        return ConditionStatus.TRUE, "StableAvailable", f"stable {version}: {counts}"
    if stable.ready_replicas > 0:
        return ConditionStatus.TRUE, "StableUpdating", f"stable {version} is updating: {counts}"
    if stable.progress_deadline_exceeded:
        return ConditionStatus.FALSE, "ProgressDeadlineExceeded", f"stable {version} is not progressing: {counts}"
    return ConditionStatus.FALSE, "StableUnavailable", f"stable {version}: {counts}"


def live_progress(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ConditionText:
    """The Progressing condition while a deploy or rollout is under way."""
    version, here = status.canary_version, where(spec, status)
    match status.phase:
        case Phase.INITIALIZING:
            return ConditionStatus.TRUE, "Initializing", f"deploying {status.stable_version}"
        case Phase.PAUSED:
            return ConditionStatus.UNKNOWN, "Paused", f"rollout of {version} paused {here}"
        case Phase.PROMOTING:
            return ConditionStatus.TRUE, "Promoting", f"rolling the stable Deployment to {version}"
        case Phase.VALIDATING:
            return ConditionStatus.TRUE, "Validating", f"canary {version} {here}"
        case Phase.EXPERIMENTING:
            return (
                ConditionStatus.TRUE,
                "Experimenting",
                f"experiment of {version} (B) against {status.stable_version} (A)",
            )
        case Phase.SHADOWING if status.step_started_at is not None:
            return ConditionStatus.TRUE, "Shadowing", f"canary {version} {here}; {_next_check(spec, status)}"
    if status.phase is Phase.PROGRESSING and route_holds(spec, status):
        held = f"canary {version} held {here}: the HTTPRoute is not accepted by every parent (see RouteAccepted)"
        return ConditionStatus.TRUE, "RouteNotAccepted", held
    if status.current_step is None:
        deadline = spec.rollout.progress_deadline
        return ConditionStatus.TRUE, "WaitingForCanary", f"waiting for canary {version} (progressDeadline {deadline})"
    if judging(spec, status):
        return _judged_progress(spec, status)
    analysis = spec.analysis
    holding = (
        analysis.inconclusive_policy is InconclusivePolicy.HOLD
        and status.inconclusive_checks >= analysis.max_inconclusive_checks
    )
    if holding:
        message = (
            f"holding {here} after {status.inconclusive_checks} inconclusive checks "
            f"(onInconclusive Hold); {_next_check(spec, status)}"
        )
        return ConditionStatus.TRUE, "InconclusiveHold", message
    return ConditionStatus.TRUE, "Analysing", f"canary {version} {here}; {_next_check(spec, status)}"


def _judged_progress(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ConditionText:
    """compareToStable: waiting for the canary's first request, gathering evidence (how much is missing), or
    holding after maxStepDuration."""
    version, here, then = status.canary_version, where(spec, status), _next_check(spec, status)
    last = status.last_check
    evidence = ""
    if last is not None and last.step == status.current_step and last.verdict is Verdict.INCONCLUSIVE:
        evidence = f"; {summary(last)}"
    if status.inconclusive_checks > 0:
        message = (
            f"holding {here}: maxStepDuration {spec.analysis.max_step_duration} passed without enough evidence "
            f"(onInconclusive Hold){evidence}; {then}"
        )
        return ConditionStatus.TRUE, "InconclusiveHold", message
    if status.step_traffic_at is None:
        return (
            ConditionStatus.TRUE,
            "WaitingForTraffic",
            f"canary {version} {here}: no request yet at this weight; {then}",
        )
    return ConditionStatus.TRUE, "Analysing", f"canary {version} {here}{evidence}; {then}"


def _next_check(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> str:
    due = next_check_at(spec, status)
    return f"next check at {due.isoformat()}" if due is not None else "no check scheduled"
