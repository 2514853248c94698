"""The ModelDeployment API, version v1alpha1: the single source of the CRD schema (see `sluice.codegen.crdgen`).

Field descriptions become the CRD's OpenAPI descriptions; `x-kubernetes-validations` carry the CEL rules the API
server enforces at admission. Models parse objects read from the API server, so unknown fields are ignored here:
the CRD's structural schema and the server's strict field validation are what reject them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "sluice.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["mdep"]
CATEGORIES = ["sluice"]

ACTION_ANNOTATION = f"{GROUP}/action"
"""One-shot manual request (`promote`, `promote-full`, `abort`, `retry`); see `Action`."""
ACTION_ID_ANNOTATION = f"{GROUP}/action-id"
"""Unique id of the request in `ACTION_ANNOTATION`; a request is handled once, when its id is new."""
PAUSED_ANNOTATION = f"{GROUP}/paused"
"""`"true"` pauses like `spec.paused` without editing the spec a GitOps tool owns."""

HISTORY_LIMIT = 20
MAX_STEPS = 20
MAX_CUSTOM_METRICS = 10
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
MIN_INTERVAL = "1s"
MAX_INTERVAL = "24h"


def _is_duration(field: str) -> str:
    """CEL: `self.<field>` is a well-formed duration. Rules that call duration() check it first, so a malformed
    value is reported once, by the field's pattern, not again as a CEL conversion error."""
    cel_pattern = DURATION_PATTERN.replace("\\.", "[.]")  # CEL string literals have no `\.` escape
    return f"self.{field}.matches('{cel_pattern}')"


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    validation: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=32,
        description="A duration such as 500ms, 30s, 1m or 1h30m.",
    ),
]

Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]
"""A Kubernetes resource quantity such as 500m, 2 or 4Gi (the CRD marks it x-kubernetes-int-or-string)."""


class ApiModel(BaseModel):
    """Base for API objects: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ModelFormat(StrEnum):
    """Serialization format of a model artifact."""

    ONNX = "onnx"
    SKLEARN = "sklearn"


PICKLE_BASED_FORMATS = frozenset({ModelFormat.SKLEARN})


class ModelSpec(ApiModel):
    """Which model artifact a version serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.format != 'sklearn' || has(self.digest)",
                    "digest is required when format is sklearn: pickle-based models load only with a pinned "
                    "sha256 digest",
                    ".digest",
                )
            ]
        }
    )

    version: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
        description=(
            "Version of the model, used in labels and names (at most 63 characters: letters, digits, '.', '_', '-', "
            "starting and ending with a letter or digit). Changing it starts a canary rollout."
        ),
        examples=["1.4.0", "2024-06-01", "v7"],
    )
    uri: str = Field(
        max_length=2048,
        pattern=r"^(file|https?|s3|gs|pvc)://\S+$",
        description="Where the artifact lives: file://, http(s)://, s3://, gs:// or pvc://<claim>/<path>.",
        examples=["https://models.example.com/fraud/1.4.0/model.onnx", "s3://models/fraud/1.4.0/model.joblib"],
    )
    format: ModelFormat = Field(description="Artifact format: onnx or sklearn (joblib).")
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[a-f0-9]{64}$",
        description="sha256 digest of the artifact, checked before loading. Required for sklearn.",
        examples=["sha256:" + "0123456789abcdef" * 4],
    )


class ResourceRequirements(ApiModel):
    """Compute resources of each serving container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Minimum resources per container, by resource name.",
        examples=[{"cpu": "500m", "memory": "1Gi"}],
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Maximum resources per container, by resource name.",
        examples=[{"cpu": 2, "memory": "2Gi"}],
    )


class EnvVar(ApiModel):
    """An extra environment variable for the serving container."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        description="Variable name: letters, digits, '_', '-', '.', not starting with a digit. Unique in the list.",
        examples=["OMP_NUM_THREADS"],
    )
    value: str = Field(default="", max_length=32768, description="Variable value.", examples=["2"])


class ServingSpec(ApiModel):
    """How serving pods run."""

    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Model-server image; defaults to the operator's setting.",
        examples=["ghcr.io/sluice-dev/serving:0.1.0"],
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Requests and limits; the operator's defaults apply to what is left out."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        description="Extra environment variables.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class ShadowSpec(ApiModel):
    """A shadow (mirror) phase before any live weight: the canary gets copies of requests, its answers are
    discarded, and it is compared with stable on the same inputs (docs/ml-analysis.md, Shadow traffic)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.minAgreement) || has(self.maxMeanAbsDifference)",
                    "shadow needs minAgreement (classifiers), maxMeanAbsDifference (regressors) or both",
                )
            ]
        }
    )

    percent: int = Field(
        default=100, ge=1, le=100, description="Percentage of requests mirrored to the canary (1..100).", examples=[50]
    )
    checks: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Passed shadow checks (one per rollout.interval) before the first live step.",
    )
    min_comparisons: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="Fewer compared requests per check is inconclusive, never a pass.",
    )
    min_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Lowest fraction of mirrored requests on which canary and stable predict the same class.",
        examples=[0.95],
    )
    max_mean_abs_difference: float | None = Field(
        default=None,
        ge=0,
        description="Highest mean absolute difference between canary and stable predictions (regressors).",
        examples=[0.5],
    )


class RolloutSpec(ApiModel):
    """How a new version is shifted in."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"!{_is_duration('interval')} || (duration(self.interval) >= duration('{MIN_INTERVAL}') "
                    f"&& duration(self.interval) <= duration('{MAX_INTERVAL}'))",
                    f"interval must be between {MIN_INTERVAL} and {MAX_INTERVAL}",
                    ".interval",
                ),
                _cel(
                    f"!{_is_duration('interval')} || !{_is_duration('progressDeadline')} "
                    "|| duration(self.progressDeadline) >= duration(self.interval)",
                    "progressDeadline must be at least as long as interval",
                    ".progressDeadline",
                ),
            ]
        }
    )

    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [10, 25, 50],
        min_length=1,
        max_length=MAX_STEPS,
        description="Canary traffic percentages, strictly increasing, each 1..100; at most 20 steps.",
        examples=[[10, 25, 50], [5, 20, 50, 100]],
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                _cel("self.isSorted()", "steps must be strictly increasing (for example [10, 25, 50])")
            ],
        },
    )
    interval: Duration = Field(
        default="1m", description="Time per step, and per analysis check (1s..24h).", examples=["30s", "5m"]
    )
    progress_deadline: Duration = Field(
        default="10m",
        description="How long a canary may take to become Ready before it is rolled back; at least interval.",
        examples=["15m"],
    )
    shadow: ShadowSpec | None = Field(
        default=None,
        description="Mirror requests to the canary and compare it with stable before any live weight; needs "
        "traffic.gateway. Off when left out.",
    )


class PrometheusRef(ApiModel):
    """The Prometheus server the analysis queries."""

    url: str = Field(
        max_length=2048,
        pattern=r"^https?://\S+$",
        description="Prometheus base URL (http or https): the operator's default or one of the other URLs its "
        "administrator allows; any other makes the spec invalid.",
        examples=["http://prometheus.monitoring.svc:9090"],
    )


class CustomMetric(ApiModel):
    """A user-written PromQL check with bounds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.min) || has(self.max)", "a custom metric needs min, max or both"),
                _cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "min must not exceed max",
                ),
            ]
        }
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z]([a-z0-9_-]*[a-z0-9])?$",
        description="Metric name, unique among the metrics: lowercase letters, digits, '_' and '-'.",
        examples=["accuracy"],
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "PromQL returning one value. Placeholders: {{namespace}}, {{name}}, {{version}}, {{track}}, "
            "{{interval}} (the check window, e.g. 1m)."
        ),
        examples=['avg_over_time(model_accuracy{namespace="{{namespace}}",version="{{version}}"}[{{interval}}])'],
    )
    min: float | None = Field(default=None, description="The check fails below this value.", examples=[0.9])
    max: float | None = Field(default=None, description="The check fails above this value.", examples=[0.05])


class InconclusivePolicy(StrEnum):
    """What happens after too many inconclusive checks in a row."""

    ROLLBACK = "Rollback"
    HOLD = "Hold"


class AnalysisSpec(ApiModel):
    """What a canary must show at every step."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"!{_is_duration('maxLatencyP99')} || duration(self.maxLatencyP99) > duration('0s')",
                    "maxLatencyP99 must be greater than 0s",
                    ".maxLatencyP99",
                )
            ]
        }
    )

    prometheus: PrometheusRef | None = Field(default=None, description="Defaults to the operator's setting.")
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Highest fraction of 5xx responses (0..1).", examples=[0.005]
    )
    max_latency_p99: Duration = Field(
        default="500ms", description="Highest 99th percentile infer latency; more than 0s.", examples=["250ms"]
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="Fewer canary requests per check is inconclusive, never a pass.",
    )
    max_failed_checks: int = Field(
        default=1, ge=1, le=100, description="Failed checks (a bound broken) that roll the canary back."
    )
    max_inconclusive_checks: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive inconclusive checks (too little traffic, no data) before onInconclusive applies.",
    )
    on_inconclusive: InconclusivePolicy = Field(
        default=InconclusivePolicy.ROLLBACK,
        description="Rollback, or Hold the current step until data arrives or a person decides.",
    )
    max_consecutive_errors: int = Field(
        default=3, ge=1, le=100, description="Consecutive checks Prometheus could not answer before rollback."
    )
    metrics: list[CustomMetric] | None = Field(
        default=None,
        max_length=MAX_CUSTOM_METRICS,
        description="Extra PromQL checks with bounds.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    max_prediction_psi: float | None = Field(
        default=None,
        alias="maxPredictionPSI",
        ge=0,
        le=100,
        description=(
            "Highest population stability index between the canary's and the stable version's predictions over the "
            "check window (predicted classes, or prediction histogram buckets for regressors). Off when unset. "
            "See docs/ml-analysis.md."
        ),
        examples=[0.2],
    )
    max_prediction_ks: float | None = Field(
        default=None,
        alias="maxPredictionKS",
        ge=0,
        le=1,
        description=(
            "Highest Kolmogorov-Smirnov distance (0..1) between the canary's and the stable version's prediction "
            "distributions over the check window, at bucket (or class) resolution. Off when unset."
        ),
        examples=[0.1],
    )
    max_feature_psi: float | None = Field(
        default=None,
        alias="maxFeaturePSI",
        ge=0,
        le=100,
        description=(
            "Highest population stability index of any monitored input feature, canary against stable, over the "
            "check window: catches a biased traffic split or a client sending the canary other inputs. Off when "
            "unset."
        ),
        examples=[0.2],
    )
    min_drift_samples: int = Field(
        default=500,
        ge=1,
        le=100_000_000,
        description=(
            "Fewer observations (predictions, or feature values) on either side over the check window makes a "
            "drift metric inconclusive, never a pass."
        ),
    )


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the ModelDeployment's namespace."""

    name: str = Field(min_length=1, max_length=253, description="ConfigMap name.", examples=["fraud-holdout"])
    key: str = Field(min_length=1, max_length=253, description="Key holding the dataset.", examples=["data.csv"])


class DatasetFormat(StrEnum):
    """How a validation dataset is written."""

    CSV = "csv"
    JSONL = "jsonl"


class ValidationMetric(StrEnum):
    """The score a validation gate computes."""

    ACCURACY = "accuracy"
    MAE = "mae"
    RMSE = "rmse"


class ValidationSpec(ApiModel):
    """A gate before any traffic: a labelled dataset is sent to the canary pods and the score must meet a bound
    (docs/ml-analysis.md, Validation gate)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.configMapRef) != has(self.uri)",
                    "validation needs exactly one of configMapRef and uri",
                ),
                _cel("has(self.min) || has(self.max)", "validation needs min, max or both"),
                _cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max"),
                _cel(
                    f"!{_is_duration('timeout')} || duration(self.timeout) > duration('0s')",
                    "timeout must be greater than 0s",
                    ".timeout",
                ),
            ]
        }
    )

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="Dataset in a ConfigMap key (at most 1 MiB, as any ConfigMap)."
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^(file|https?)://\S+$",
        description="Dataset at an http(s):// URI on a host the operator allows (its dataset hosts; redirects are "
        "not followed), or a file:// URI under the operator's dataset directory. By default neither is allowed: "
        "use configMapRef.",
        examples=["https://data.example.com/fraud/holdout.csv"],
    )
    format: DatasetFormat = Field(
        default=DatasetFormat.CSV,
        description="csv: a header row, feature columns then the label column; jsonl: one "
        '{"features": [...], "label": ...} object per line.',
    )
    label_column: str = Field(
        default="label", min_length=1, max_length=253, description="CSV column holding the label."
    )
    metric: ValidationMetric = Field(
        default=ValidationMetric.ACCURACY, description="accuracy (classifiers), mae or rmse (regressors)."
    )
    min: float | None = Field(default=None, description="The gate fails below this score.", examples=[0.85])
    max: float | None = Field(default=None, description="The gate fails above this score.", examples=[2.5])
    timeout: Duration = Field(default="2m", description="Longest time one validation run may take.")
    batch_size: int = Field(default=64, ge=1, le=10_000, description="Rows per infer request.")


GATEWAY_GROUP = "gateway.networking.k8s.io"
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Gateway API hostname: lowercase DNS names, optionally one leading `*.` wildcard label; no IP addresses."""


class ParentReference(ApiModel):
    """A Gateway the HTTPRoute attaches to, as in Gateway API. Only Gateways: another parent (a Service, which
    makes a GAMMA mesh route) would let a ModelDeployment take over that Service's traffic."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"!has(self.group) || self.group == '{GATEWAY_GROUP}'",
                    f"parentRefs may only name Gateways: group must be {GATEWAY_GROUP} (or left out)",
                    ".group",
                ),
                _cel(
                    "!has(self.kind) || self.kind == 'Gateway'",
                    "parentRefs may only name Gateways: kind must be Gateway (or left out)",
                    ".kind",
                ),
            ]
        }
    )

    name: str = Field(min_length=1, max_length=253, description="Name of the parent.", examples=["public"])
    namespace: str | None = Field(
        default=None, max_length=63, description="Namespace of the parent; defaults to the ModelDeployment's."
    )
    section_name: str | None = Field(
        default=None, max_length=253, description="A listener of the Gateway.", examples=["https"]
    )
    group: str | None = Field(
        default=None, max_length=253, description=f"API group of the parent: {GATEWAY_GROUP} (the default) only."
    )
    kind: str | None = Field(default=None, max_length=63, description="Kind of the parent: Gateway (the default) only.")


class GatewayTraffic(ApiModel):
    """Traffic split by weights on an HTTPRoute attached to one or more Gateways. The route matches only this
    model's paths (`/v2/models/<name>...`, `/v1/models/<name>[:predict]`), so models can share a hostname."""

    parent_refs: list[ParentReference] = Field(
        min_length=1,
        max_length=32,
        description="Gateways the HTTPRoute attaches to; at least one. The operator may allow only some Gateways.",
    )
    hostnames: list[Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]] | None = Field(
        default=None,
        max_length=16,
        description="Hostnames the HTTPRoute matches (lowercase DNS names, optionally starting with `*.`); all of "
        "the Gateway's when left out. The operator may require them and limit them to some domains.",
        examples=[["fraud.example.com"]],
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class TrafficSpec(ApiModel):
    """How traffic is split; without `gateway`, by replica ratio behind one Service."""

    gateway: GatewayTraffic | None = Field(
        default=None, description="Split with a Gateway API HTTPRoute that the operator owns."
    )


class ModelDeploymentSpec(ApiModel):
    """The desired state: which model to serve and how new versions are rolled out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.validation) || (has(self.traffic) && has(self.traffic.gateway))",
                    "validation needs traffic.gateway: only an HTTPRoute keeps a running canary at weight 0",
                    ".validation",
                ),
                _cel(
                    "!has(self.rollout) || !has(self.rollout.shadow) "
                    "|| (has(self.traffic) && has(self.traffic.gateway))",
                    "rollout.shadow needs traffic.gateway: only an HTTPRoute can mirror requests",
                    ".rollout",
                ),
            ]
        }
    )

    model: ModelSpec = Field(description="The model artifact to serve.")
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Serving replicas of the stable version (0..1000).", examples=[3]
    )
    serving: ServingSpec | None = Field(default=None, description="Image, resources and environment of the pods.")
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="Canary steps and their timing.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Bounds every analysis check applies.")
    traffic: TrafficSpec | None = Field(
        default=None, description="Traffic splitting; by replica ratio behind one Service when left out."
    )
    validation: ValidationSpec | None = Field(
        default=None,
        description="Score a labelled dataset on the canary before any traffic; needs traffic.gateway. Off when "
        "left out.",
    )
    paused: bool = Field(default=False, description="Hold a rollout at its current step.")


class Phase(StrEnum):
    """Where a ModelDeployment is in its lifecycle."""

    INITIALIZING = "Initializing"
    STABLE = "Stable"
    VALIDATING = "Validating"
    SHADOWING = "Shadowing"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
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
    outcome: Outcome = Field(description="Promoted, RolledBack, Superseded or Aborted.")
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


class ModelDeploymentStatus(ApiModel):
    """The observed state, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The generation of the spec last acted on.")
    phase: Phase | None = Field(default=None, description="Lifecycle phase.")
    paused_in: Phase | None = Field(
        default=None,
        description="While phase is Paused: the phase the rollout is frozen in, where it continues when resumed.",
    )
    stable_version: str | None = Field(default=None, description="The version serving all traffic between rollouts.")
    stable_model: ModelStatus | None = Field(
        default=None, description="The stable version's model, kept while spec.model names the canary."
    )
    canary_version: str | None = Field(default=None, description="The version being rolled out, if any.")
    canary_weight: int = Field(default=0, ge=0, le=100, description="Percentage of traffic the canary receives.")
    current_step: int | None = Field(default=None, description="Index into spec.rollout.steps; none between rollouts.")
    rollout_started_at: datetime | None = Field(default=None, description="When the current rollout started.")
    step_started_at: datetime | None = Field(default=None, description="When the current step started.")
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
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=HISTORY_LIMIT, description="Finished rollouts; at most 20."
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
