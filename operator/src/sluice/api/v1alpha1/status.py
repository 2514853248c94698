"""The status the operator writes: phase, counters, checks, conditions, history; and the ModelDeployment."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from sluice.api.v1alpha1.experiment import ExperimentStatus
from sluice.api.v1alpha1.meta import API_VERSION, HISTORY_LIMIT, KIND, REVISION_SPEC_LIMIT, ApiModel
from sluice.api.v1alpha1.notifications import NotificationCounts
from sluice.api.v1alpha1.serving import ModelFormat, ServingSpec
from sluice.api.v1alpha1.spec import ModelDeploymentSpec
from sluice.api.v1alpha1.validation import ValidationMetric


class Phase(StrEnum):
    """Where a ModelDeployment is in its lifecycle."""

    INITIALIZING = "Initializing"
    STABLE = "Stable"
    VALIDATING = "Validating"
    SHADOWING = "Shadowing"
    PROGRESSING = "Progressing"
    EXPERIMENTING = "Experimenting"
    """spec.experiment: the candidate (B) serves its share of entity keys beside stable (A) until the rule decides."""
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    """rollout.keepPrevious: the promoted revision serves all traffic from the canary's pods while the previous
    revision's pods are kept (status.previous); then it moves to the stable Deployment and the phase is Stable."""
    ROLLED_BACK = "RolledBack"


class Verdict(StrEnum):
    """The result of one analysis check, or of one metric in it."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERRORED = "Errored"


class Outcome(StrEnum):
    """How a rollout ended."""

    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"
    ABORTED = "Aborted"
    ROLLED_BACK_AFTER_PROMOTION = "RolledBackAfterPromotion"
    """Within rollout.keepPrevious: traffic went back to the kept previous revision (undo, or postPromotionAnalysis)."""
    KEPT = "Kept"
    """spec.experiment found no difference: the stable version was kept, the candidate's pods removed."""


class Action(StrEnum):
    """Manual requests accepted in the `sluice.dev/action` annotation."""

    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"


class Condition(ApiModel):
    """A condition of the ModelDeployment, as metav1.Condition."""

    type: str = Field(description="Condition type, such as Ready.")
    status: str = Field(pattern=r"^(True|False|Unknown)$", description="True, False or Unknown.")
    observed_generation: int | None = Field(default=None, description="The generation the condition was set for.")
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: str = Field(description="Machine-readable reason in CamelCase.")
    message: str = Field(default="", description="Human-readable details.")


class MetricResult(ApiModel):
    """One metric of an analysis check."""

    name: str = Field(description="A built-in check's or a custom metric's name.")
    value: float | None = Field(default=None, description="The value read; none when there was no data.")
    min: float | None = Field(default=None, description="Lower bound applied.")
    max: float | None = Field(default=None, description="Upper bound applied.")
    verdict: Verdict = Field(description="Passed, Failed, Inconclusive or Errored.")
    message: str = Field(default="", description="Why, in words.")
    lower: float | None = Field(
        default=None, description="compareToStable: the lower end of the confidence interval of the value."
    )
    upper: float | None = Field(
        default=None, description="compareToStable: the upper end of the confidence interval of the value."
    )
    canary_requests: float | None = Field(
        default=None, description="compareToStable: the canary's requests the value was judged on (the evidence)."
    )
    stable_requests: float | None = Field(
        default=None, description="compareToStable: the stable version's requests the value was judged on."
    )


class CheckResult(ApiModel):
    """One analysis check of the canary."""

    time: datetime = Field(description="When the check ran.")
    step: int = Field(description="Index of the step it ran in.")
    weight: int = Field(description="Canary traffic percentage at the time.")
    verdict: Verdict = Field(description="Passed, Failed, Inconclusive or Errored.")
    metrics: list[MetricResult] = Field(default_factory=list, description="Per-metric results.")


class ModelStatus(ApiModel):
    """The model a running version serves (kept for the stable version while spec names the canary)."""

    version: str = Field(description="Model version.")
    uri: str = Field(description="Artifact location.")
    format: ModelFormat = Field(description="Artifact format.")
    digest: str | None = Field(default=None, description="Pinned sha256 digest, if any.")


class ResolvedModel(ApiModel):
    """A models:/ uri as the operator resolved it in the MLflow registry, once per spec.model: what every pod of
    the revision serves, whatever the alias names later."""

    spec_hash: str = Field(max_length=64, description="Hash of the spec.model it was resolved for.")
    version: str = Field(pattern=r"^[1-9][0-9]{0,9}$", description="The registered model version resolved to.")
    format: ModelFormat = Field(description="The format of the flavor chosen from its MLmodel file.")
    digest: str = Field(pattern=r"^sha256:[a-f0-9]{64}$", description="sha256 digest of the artifact served.")
    resolved_at: datetime = Field(description="When it was resolved.")


class RevisionRef(ApiModel):
    """A revision: everything that shapes a serving pod (spec.model and spec.serving), numbered in order."""

    number: int = Field(ge=1, description="Revision number, increasing with every new revision rolled out.")
    hash: str = Field(max_length=64, description="Hash of the revision's spec.model and spec.serving.")
    version: str = Field(max_length=63, description="Its model version.")
    changes: str = Field(
        default="",
        max_length=512,
        description="What it changed against the stable revision it was rolled out beside, in words (the model "
        "version, the image, env names and other field names; never an env value).",
    )


class PreviousRevision(ApiModel):
    """rollout.keepPrevious: the revision a promotion replaced, whose pods are kept Ready (taking no traffic) until
    `until`; `kubectl sluice undo` before then moves all traffic back to them at once."""

    revision: RevisionRef = Field(description="The previous revision.")
    version: str = Field(max_length=63, description="Its model version.")
    model: ModelStatus = Field(description="Its model (what the kept pods serve).")
    serving: ServingSpec | None = Field(default=None, description="Its spec.serving (what the kept pods run).")
    since: datetime = Field(description="When the promoted revision took all traffic (the window's start).")
    until: datetime = Field(
        description="When the kept pods go (since + rollout.keepPrevious; earlier when the spec moved on)."
    )
    released: bool = Field(
        default=False,
        description="The window is over: the stable Deployment rolls to the promoted revision while the canary's "
        "pods serve; then traffic moves back to it and this record goes.",
    )


class ValidationResult(ApiModel):
    """The validation gate's last run in the current (or last) rollout."""

    version: str = Field(description="The canary version scored.")
    time: datetime = Field(description="When the run finished.")
    metric: ValidationMetric = Field(description="accuracy, mae or rmse.")
    score: float | None = Field(default=None, description="The score; none when the run failed.")
    samples: int = Field(default=0, description="Labelled rows scored.")
    passed: bool = Field(description="Whether the score met the bound.")
    message: str = Field(default="", description="The score against its bound, or why there is no score.")


class ActionOutcome(ApiModel):
    """What the operator did with the last manual request (the sluice.dev/action annotations)."""

    id: str = Field(description="The request's sluice.dev/action-id.")
    action: Action = Field(description="The requested action.")
    accepted: bool = Field(description="Whether the operator carried it out (false: refused, see message).")
    message: str = Field(default="", description="Why it was refused; empty when it was carried out.")


class HistoryEntry(ApiModel):
    """A finished rollout."""

    version: str = Field(description="The version that was rolled out.")
    outcome: Outcome = Field(description="Promoted, RolledBack, Superseded, Aborted, RolledBackAfterPromotion or Kept.")
    started_at: datetime = Field(description="When the rollout started.")
    finished_at: datetime = Field(description="When it ended.")
    reason: str = Field(description="Machine-readable reason in CamelCase.")
    message: str = Field(default="", description="Human-readable details.")
    model: ModelStatus | None = Field(
        default=None,
        description=(
            "The model that was rolled out (what `kubectl sluice undo` can return to); absent in entries written "
            "before this field existed, and when the spec had already moved on (Superseded, RevertedToStable)."
        ),
    )
    stable_model: ModelStatus | None = Field(
        default=None,
        description="The stable version's model while the rollout ran: what a promotion replaced, what a rollback "
        "kept serving (the previous stable that `kubectl sluice undo` returns to by default).",
    )
    revision: RevisionRef | None = Field(default=None, description="The revision that was rolled out.")
    stable_revision: RevisionRef | None = Field(default=None, description="The stable revision it ran beside.")
    serving: str | None = Field(
        default=None,
        max_length=REVISION_SPEC_LIMIT,
        description="The rolled-out revision's spec.serving as compact JSON (what `kubectl sluice undo "
        "--to-revision` returns to, with `model`); absent when the spec had moved on or it was too long to keep.",
    )
    stable_serving: str | None = Field(
        default=None,
        max_length=REVISION_SPEC_LIMIT,
        description="The stable revision's spec.serving as compact JSON; absent when too long to keep.",
    )


class ModelDeploymentStatus(ApiModel):
    """The observed state, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The generation of the spec last acted on.")
    phase: Phase | None = Field(default=None, description="Lifecycle phase.")
    paused_in: Phase | None = Field(
        default=None,
        description="While phase is Paused: the phase the rollout is frozen in, where it continues when resumed.",
    )
    stable_version: str | None = Field(default=None, description="The version serving all traffic between rollouts.")
    resolved_model: ResolvedModel | None = Field(
        default=None,
        description="With a models:/ uri: the registered version, format and digest spec.model resolved to (pinned "
        "until spec.model changes).",
    )
    stable_model: ModelStatus | None = Field(
        default=None, description="The stable version's model, kept while spec.model names the canary."
    )
    stable_revision: RevisionRef | None = Field(default=None, description="The revision the stable track runs.")
    stable_serving: ServingSpec | None = Field(
        default=None, description="The stable revision's spec.serving, kept while spec.serving names the canary's."
    )
    previous: PreviousRevision | None = Field(
        default=None,
        description="rollout.keepPrevious: the revision the last promotion replaced, while its pods are kept for an "
        "instant undo (phase Promoted).",
    )
    canary_version: str | None = Field(default=None, description="The version being rolled out, if any.")
    canary_revision: RevisionRef | None = Field(
        default=None, description="The revision being rolled out (or, after a rollback, the one rolled back)."
    )
    canary_weight: int = Field(
        default=0, ge=0, le=100, description="Percentage of traffic requested for the canary (see actualWeight)."
    )
    actual_weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Percentage of traffic the canary actually receives: with a Gateway, the HTTPRoute's weight once "
        "every parent accepted the route; without one, the canary's share of the ready serving pods behind the "
        "one Service. None when unknown.",
    )
    current_step: int | None = Field(default=None, description="Index into spec.rollout.steps; none between rollouts.")
    rollout_started_at: datetime | None = Field(default=None, description="When the current rollout started.")
    step_started_at: datetime | None = Field(default=None, description="When the current step started.")
    step_traffic_at: datetime | None = Field(
        default=None,
        description=(
            "compareToStable: when a check first saw the canary serve requests at the current step's weight; the "
            "step's clock (rollout.interval, analysis.maxStepDuration) starts there."
        ),
    )
    last_check_time: datetime | None = Field(default=None, description="When the last analysis check ran.")
    passed_checks: int = Field(default=0, description="Passed checks in the current rollout.")
    failed_checks: int = Field(default=0, description="Failed checks in the current rollout.")
    inconclusive_checks: int = Field(
        default=0, description="Inconclusive checks counted toward spec.analysis.maxInconclusiveChecks."
    )
    consecutive_errors: int = Field(default=0, description="Consecutive checks Prometheus could not answer.")
    last_check: CheckResult | None = Field(default=None, description="The last analysis check.")
    validation: ValidationResult | None = Field(
        default=None, description="The validation gate's last run (spec.validation)."
    )
    last_handled_action_id: str | None = Field(
        default=None, description="The sluice.dev/action-id of the last manual request handled."
    )
    last_action: ActionOutcome | None = Field(
        default=None, description="The outcome of the last manual request handled (lastHandledActionId's)."
    )
    ready_replicas: int = Field(default=0, description="Ready serving pods (the scale subresource's status replicas).")
    selector: str | None = Field(
        default=None,
        description="Label selector of the serving pods, in string form (the scale subresource's selector, for HPA).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Conditions, one per type; Ready feeds the READY column.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    experiment: ExperimentStatus | None = Field(
        default=None, description="spec.experiment: the running (or last) experiment's split, samples and decision."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=HISTORY_LIMIT, description="Finished rollouts; at most 20."
    )
    notifications: NotificationCounts | None = Field(
        default=None, description="Rollout events sent to webhook receivers, by outcome (with notifications)."
    )


class ModelDeployment(ApiModel):
    """A served model whose new versions are rolled out as analysed canaries."""

    api_version: str = Field(default=API_VERSION, description="sluice.dev/v1alpha1")
    kind: str = Field(default=KIND, description="ModelDeployment")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="The desired state.")
    status: ModelDeploymentStatus = Field(
        default_factory=ModelDeploymentStatus, description="The observed state, written by the operator."
    )
