"""The ModelDeployment API, version v1alpha1: the single source of the CRD schema (see `sluice.crdgen`).

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
MIN_INTERVAL = "1s"
MAX_INTERVAL = "24h"


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


class ApiModel(BaseModel):
    """Base for API objects: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ModelFormat(StrEnum):
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
        description="Version of the model, used in labels and names. Changing it starts a canary rollout.",
    )
    uri: str = Field(
        max_length=2048,
        pattern=r"^(file|https?|s3|gs|pvc)://\S+$",
        description="Where the artifact lives: file://, http(s)://, s3://, gs:// or pvc://<claim>/<path>.",
    )
    format: ModelFormat = Field(description="Artifact format: onnx or sklearn (joblib).")
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[a-f0-9]{64}$",
        description="sha256 digest of the artifact, checked before loading. Required for sklearn.",
    )


class ResourceRequirements(ApiModel):
    """Compute resources of each serving container, as in a Pod spec."""

    requests: dict[str, int | str] | None = Field(default=None, json_schema_extra={"x-kubernetes-int-or-string": True})
    limits: dict[str, int | str] | None = Field(default=None, json_schema_extra={"x-kubernetes-int-or-string": True})


class EnvVar(ApiModel):
    """An extra environment variable for the serving container."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str = Field(default="", max_length=32768)


class ServingSpec(ApiModel):
    """How serving pods run."""

    image: str | None = Field(
        default=None, max_length=1024, description="Model-server image; defaults to the operator's setting."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Requests and limits; the operator's defaults apply to what is left out."
    )
    env: list[EnvVar] | None = Field(default=None, max_length=64, description="Extra environment variables.")


class RolloutSpec(ApiModel):
    """How a new version is shifted in."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"duration(self.interval) >= duration('{MIN_INTERVAL}') "
                    f"&& duration(self.interval) <= duration('{MAX_INTERVAL}')",
                    f"interval must be between {MIN_INTERVAL} and {MAX_INTERVAL}",
                    ".interval",
                ),
                _cel(
                    "duration(self.progressDeadline) >= duration(self.interval)",
                    "progressDeadline must be at least one interval",
                    ".progressDeadline",
                ),
            ]
        }
    )

    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [10, 25, 50],
        min_length=1,
        max_length=MAX_STEPS,
        description="Canary traffic percentages, strictly increasing, each 1..100.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                _cel("self.isSorted()", "steps must be strictly increasing (for example [10, 25, 50])")
            ],
        },
    )
    interval: Duration = Field(default="1m", description="Time per step, and per analysis check (1s..24h).")
    progress_deadline: Duration = Field(
        default="10m",
        description="How long a canary may take to become Ready before it is rolled back.",
    )


class PrometheusRef(ApiModel):
    url: str = Field(max_length=2048, pattern=r"^https?://\S+$", description="Prometheus base URL.")


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

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z]([a-z0-9_-]*[a-z0-9])?$")
    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "PromQL returning one value. Placeholders: {{namespace}}, {{name}}, {{version}}, {{track}}, "
            "{{interval}} (the check window, e.g. 1m)."
        ),
    )
    min: float | None = Field(default=None, description="The check fails below this value.")
    max: float | None = Field(default=None, description="The check fails above this value.")


class InconclusivePolicy(StrEnum):
    ROLLBACK = "Rollback"
    HOLD = "Hold"


class AnalysisSpec(ApiModel):
    """What a canary must show at every step."""

    prometheus: PrometheusRef | None = Field(default=None, description="Defaults to the operator's setting.")
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="Highest fraction of 5xx responses.")
    max_latency_p99: Duration = Field(default="500ms", description="Highest 99th percentile infer latency.")
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


class ParentReference(ApiModel):
    """A Gateway (or other parent) the HTTPRoute attaches to, as in Gateway API."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, max_length=63)
    section_name: str | None = Field(default=None, max_length=253)
    group: str | None = Field(default=None, max_length=253)
    kind: str | None = Field(default=None, max_length=63)


class GatewayTraffic(ApiModel):
    parent_refs: list[ParentReference] = Field(min_length=1, max_length=32)
    hostnames: list[Annotated[str, Field(max_length=253)]] | None = Field(default=None, max_length=16)


class TrafficSpec(ApiModel):
    """How traffic is split; without `gateway`, by replica ratio behind one Service."""

    gateway: GatewayTraffic | None = Field(
        default=None, description="Split with a Gateway API HTTPRoute that the operator owns."
    )


class ModelDeploymentSpec(ApiModel):
    model: ModelSpec
    replicas: int = Field(default=1, ge=0, le=1000, description="Serving replicas of the stable version.")
    serving: ServingSpec | None = None
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    traffic: TrafficSpec | None = None
    paused: bool = Field(default=False, description="Hold a rollout at its current step.")


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    STABLE = "Stable"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    ROLLED_BACK = "RolledBack"


class Verdict(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERRORED = "Errored"


class Outcome(StrEnum):
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"
    ABORTED = "Aborted"


class Action(StrEnum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"


class Condition(ApiModel):
    """metav1.Condition."""

    type: str
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    observed_generation: int | None = None
    last_transition_time: datetime
    reason: str
    message: str = ""


class MetricResult(ApiModel):
    name: str
    value: float | None = None
    min: float | None = None
    max: float | None = None
    verdict: Verdict
    message: str = ""


class CheckResult(ApiModel):
    """One analysis check of the canary."""

    time: datetime
    step: int
    weight: int
    verdict: Verdict
    metrics: list[MetricResult] = Field(default_factory=list)


class ModelStatus(ApiModel):
    """The model a running version serves (kept for the stable version while spec names the canary)."""

    version: str
    uri: str
    format: ModelFormat
    digest: str | None = None


class HistoryEntry(ApiModel):
    version: str
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    reason: str
    message: str = ""


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    stable_version: str | None = None
    stable_model: ModelStatus | None = None
    canary_version: str | None = None
    canary_weight: int = Field(default=0, ge=0, le=100)
    current_step: int | None = Field(default=None, description="Index into spec.rollout.steps; none between rollouts.")
    rollout_started_at: datetime | None = None
    step_started_at: datetime | None = None
    last_check_time: datetime | None = None
    passed_checks: int = 0
    failed_checks: int = 0
    inconclusive_checks: int = 0
    consecutive_errors: int = 0
    last_check: CheckResult | None = None
    last_handled_action_id: str | None = None
    ready_replicas: int = 0
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)


class ModelDeployment(ApiModel):
    """A served model whose new versions are rolled out as analysed canaries."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
