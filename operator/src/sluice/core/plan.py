"""What the pure core reads (`Observations`) and what it returns (`Plan`): the contract between core and adapters.

Adapters gather observations from Kubernetes and Prometheus; `sluice.core.rollout.decide` turns
(spec, status, observations, now) into a plan; adapters then make the world match the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from sluice.api.v1alpha1 import Action, ModelDeploymentStatus, ModelStatus, RouteMatch, ServingSpec
from sluice.core.drift import Counts


@dataclass(frozen=True)
class WorkloadState:
    """A serving Deployment (stable or canary) as last observed."""

    exists: bool = False
    version: str | None = None
    """Model version its pod template serves (label `sluice.dev/version`)."""
    revision: str | None = None
    """Hash of the revision its pod template runs (annotation `sluice.dev/revision`)."""
    replicas: int = 0
    """Desired replicas in its spec."""
    pods: int = 0
    """Pods its ReplicaSets run now (status.replicas; terminating ones are not counted)."""
    updated_replicas: int = 0
    ready_replicas: int = 0
    available: bool = False
    """Rolled out: observed generation current, all replicas updated, ready and available."""
    progress_deadline_exceeded: bool = False
    experiment: str | None = None
    """The experiment id its pod template assigns arms for (annotation `sluice.dev/experiment`), if any."""


@dataclass(frozen=True)
class TrackCounts:
    """One track's requests over the check window: all of them, the failed ones, and the latency histogram's
    cumulative counts by upper bound `le` (`+Inf` included), as Prometheus exposes them."""

    requests: float | None = None
    errors: float | None = None
    latency_buckets: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """The canary's and the stable version's requests over the same window (read when compareToStable is set)."""

    canary: TrackCounts
    stable: TrackCounts


@dataclass(frozen=True)
class AnalysisReading:
    """The canary's metrics over one check window, or why they could not be read.

    A value of None means no data (empty result or NaN); `error` set means the provider could not answer at all
    (unreachable, timeout, error response): the check is then Errored whatever the values say.
    """

    request_count: float | None = None
    error_rate: float | None = None
    latency_p99_seconds: float | None = None
    custom: dict[str, float | None] = field(default_factory=dict)
    predictions: Counts | None = None
    """Canary and stable predictions over the window (per class, or prediction histogram buckets), read only when
    a prediction drift bound is set; None for no prediction series on either side."""
    features: Mapping[str, Counts] = field(default_factory=dict)
    """Canary and stable input-feature histogram buckets by feature name, read only when maxFeaturePSI is set."""
    comparison: Comparison | None = None
    """Both tracks' request counts over the window, read only when compareToStable is set."""
    error: str | None = None


@dataclass(frozen=True)
class ValidationReading:
    """One validation run against the canary: the score over `samples` rows, or why there is none."""

    score: float | None = None
    samples: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ShadowReading:
    """The canary's comparisons with stable over one check window (None: no data), or why they could not be read."""

    comparisons: float | None = None
    agreement: float | None = None
    """Fraction of compared requests on which both predicted the same (classifiers)."""
    mean_abs_difference: float | None = None
    """Mean |canary - stable| over compared predictions (regressors)."""
    error: str | None = None


@dataclass(frozen=True)
class ExperimentReading:
    """An experiment's evidence since it started: each arm's answered requests and, per metric, each arm's hits
    (None: no data), or why they could not be read."""

    samples_a: float | None = None
    samples_b: float | None = None
    hits: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    error: str | None = None


class MirrorSupport(StrEnum):
    """What the operator found about one parent Gateway's support of the HTTPRoute RequestMirror filter."""

    LISTED = "Listed"
    """Its GatewayClass lists HTTPRouteRequestMirror in status.supportedFeatures."""
    ASSERTED = "Asserted"
    """The operator's admin asserts support for its GatewayClass (setting mirror_gateway_classes)."""
    NOT_LISTED = "NotListed"
    """Its GatewayClass publishes supportedFeatures without HTTPRouteRequestMirror: the implementation lacks it."""
    NOT_PUBLISHED = "NotPublished"
    """Its GatewayClass publishes no supportedFeatures: support unknown."""
    MISSING = "Missing"
    """The Gateway (gateway_class None) or its GatewayClass does not exist."""
    FORBIDDEN = "Forbidden"
    """The operator may not read the Gateway (gateway_class None) or its GatewayClass."""
    UNREADABLE = "Unreadable"
    """Another error reading the Gateway (gateway_class None) or its GatewayClass."""


@dataclass(frozen=True)
class ParentGateway:
    """One parent Gateway of the HTTPRoute and its class's RequestMirror support, as read."""

    gateway: str
    """namespace/name, as the spec names it."""
    gateway_class: str | None
    """Its spec.gatewayClassName; None when the Gateway could not be read."""
    support: MirrorSupport


@dataclass(frozen=True)
class ActionRequest:
    """A manual request from the `sluice.dev/action` annotations, not yet handled."""

    action: Action
    request_id: str


@dataclass(frozen=True)
class BlockedPods:
    """Pods of the ModelDeployment that cannot schedule, pull their image or start (see `core.world`)."""

    reason: str
    """The Kubernetes reason most of them show (one of `core.world.BLOCKING_REASONS`)."""
    count: int
    """Pods blocked, whatever their reason."""


@dataclass(frozen=True)
class RouteReading:
    """The HTTPRoute's `.status.parents`: how many of the parents in its spec accepted it, and how many refused."""

    parents: int
    accepted: int
    refused: int
    reason: str | None = None
    """A refusing parent's Accepted reason, when it is a CamelCase word (else None)."""


@dataclass(frozen=True)
class Observations:
    generation: int
    stable: WorkloadState
    canary: WorkloadState
    analysis: AnalysisReading | None = None
    """Present only when a check was due (see `sluice.core.rollout.check_window`)."""
    action: ActionRequest | None = None
    paused: bool = False
    """spec.paused or the `sluice.dev/paused` annotation."""
    validation: ValidationReading | None = None
    """Present only when the validation gate was due (see `sluice.core.rollout.validation_due`)."""
    shadow: ShadowReading | None = None
    """Present with `analysis` when a shadow check was due (phase Shadowing)."""
    blocked_pods: BlockedPods | None = None
    """Pods that cannot start; None when none are, or when pods were not listed (see `core.world.pods_due`)."""
    route: RouteReading | None = None
    """The HTTPRoute's acceptance by its parents; None without a Gateway or before the route exists."""
    gateways: tuple[ParentGateway, ...] | None = None
    """The HTTPRoute's parent Gateways and their RequestMirror support; read whenever spec.rollout.shadow and
    spec.traffic.gateway are set (None: not read, which never allows mirroring)."""
    experiment: ExperimentReading | None = None
    """Present only when an experiment check was due (see `sluice.core.experiment.experiment_window`)."""


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class EventRecord:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class ReplicaBounds:
    """The minReplicas and maxReplicas of a track's HorizontalPodAutoscaler."""

    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Assignment:
    """spec.experiment on the stable track: how its server assigns entity keys to the arms and where B is."""

    experiment_id: str
    header: str
    split: int
    candidate_version: str
    exposure_log: bool


@dataclass(frozen=True)
class WorkloadPlan:
    """The Deployment a track should run: which revision (model and serving), how many replicas."""

    model: ModelStatus
    replicas: int
    """With `autoscaling`, a floor: the count the Deployment is created at or raised to, never lowered."""
    reference: ModelStatus | None = None
    """The model the canary compares itself with (the stable one) when spec.rollout.shadow is set."""
    serving: ServingSpec | None = None
    """The revision's spec.serving (image, env, resources, pod fields)."""
    autoscaling: ReplicaBounds | None = None
    """The track's HPA bounds when an HPA sets its replicas (spec.autoscaling), else None."""
    assignment: Assignment | None = None
    """The stable track during an experiment: its server assigns the arms and proxies B's to the candidate."""


@dataclass(frozen=True)
class Plan:
    status: ModelDeploymentStatus
    """The complete status to write (unchanged status means no write)."""
    stable: WorkloadPlan
    canary: WorkloadPlan | None
    """None while no rollout has ever started (and no canary Deployment exists); after a rollout ends it stays,
    at 0 replicas, so the canary Deployment is scaled down rather than deleted."""
    canary_weight: int
    """Percentage of traffic the router sends to the canary."""
    mirror_percent: int = 0
    """Percentage of requests the router copies to the canary (answers discarded); non-zero only while
    Shadowing."""
    canary_matches: tuple[RouteMatch, ...] = ()
    """Requests the router sends to the canary alone, whatever the weight (spec.rollout.match, from the first live
    step until the rollout ends; `sluice.core.rollout.workloads.canary_matches`)."""
    events: tuple[EventRecord, ...] = ()
    requeue_after: timedelta | None = None
    """When to look again even if nothing changes: until the next analysis check, or until the canary's progress
    deadline while it starts; zero when a check is due now (call `check_window` and pass the reading). None when
    only a change (spec, annotations, an owned Deployment's status) can move things on."""
