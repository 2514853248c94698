"""spec.model and spec.serving: the model artifact and how its pods run."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.meta import ApiModel, Quantity, cel
from sluice.api.v1alpha1.pod import (
    POD_ANNOTATIONS_RULE,
    POD_LABELS_RULE,
    EnvFromSource,
    EnvVar,
    LocalObjectReference,
    ObjectName,
    StartupProbe,
)
from sluice.api.v1alpha1.scheduling import Affinity, Toleration, TopologySpreadConstraint


class ModelFormat(StrEnum):
    """Serialization format of a model artifact."""

    ONNX = "onnx"
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    PYTHON = "python"


PICKLE_BASED_FORMATS = frozenset({ModelFormat.SKLEARN})

REGISTRY_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}"
"""A registered model's name in a models:/ uri (MLflow allows more; sluice takes these characters)."""
REGISTRY_URI = rf"^models:/{REGISTRY_NAME}(/[1-9][0-9]{{0,9}}|@[A-Za-z0-9_-]{{1,255}})$"
"""models:/<name>/<version> or models:/<name>@<alias>."""
REGISTRY_OR_STORE_URI = rf"^(file|https?|s3|gs|pvc)://\S+$|{REGISTRY_URI}"


class ModelSpec(ApiModel):
    """Which model artifact a version serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.format) || self.uri.startsWith('models:/')",
                    "format is required unless the uri is an MLflow registry URI (models:/...), whose flavor the "
                    "operator reads from the registered model's MLmodel file",
                    ".format",
                ),
                cel(
                    "self.uri.startsWith('models:/') || !has(self.format) || !(self.format in ['sklearn', 'python']) "
                    "|| has(self.digest)",
                    "digest is required when format is sklearn or python: pickles and custom Python models are "
                    "code, and load only with a pinned sha256 digest",
                    ".digest",
                ),
                cel(
                    "!self.uri.startsWith('http://') || has(self.digest)",
                    "digest is required for an http:// uri: an artifact fetched without TLS loads only with a "
                    "pinned sha256 digest (or use https://)",
                    ".digest",
                ),
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
        pattern=REGISTRY_OR_STORE_URI,
        description=(
            "Where the artifact lives: file://, http(s)://, s3://, gs://, pvc://<claim>/<path>, or a model in the "
            "MLflow registry of the operator's MLFLOW_TRACKING_URI: models:/<name>/<version> or "
            "models:/<name>@<alias> (resolved once per spec.model; the version and digest it resolved to are "
            "recorded in status.resolvedModel and pinned, docs/serving.md)."
        ),
        examples=[
            "https://models.example.com/fraud/1.4.0/model.onnx",
            "s3://models/fraud/1.4.0/model.joblib",
            "models:/fraud@champion",
        ],
    )
    format: ModelFormat | None = Field(
        default=None,
        description=(
            "Artifact format: onnx, sklearn (joblib or skops), xgboost (native JSON/UBJSON), lightgbm (native text) "
            "or python (a custom model: a directory or a wheel, docs/serving.md). Required, except for a models:/ "
            "uri, whose format comes from the registered model's flavor (given, it must be that flavor)."
        ),
    )
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[a-f0-9]{64}$",
        description=(
            "sha256 digest of the artifact, checked before loading (of a directory: `sluice-serving-digest DIR`). "
            "Required for sklearn, python and http:// uris; with a models:/ uri, the operator pins the digest it "
            "computed (given, it must match)."
        ),
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


class ServingSpec(ApiModel):
    """How serving pods run. Everything here (with spec.model) is the revision: changing any of it rolls the new
    revision out as a canary."""

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
        description="Extra environment variables: literal, or from a Secret, a ConfigMap or the pod (valueFrom).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    env_from: list[EnvFromSource] | None = Field(
        default=None, max_length=8, description="Secrets and ConfigMaps whose every key becomes a variable."
    )
    service_account_name: ObjectName | None = Field(
        default=None,
        description="ServiceAccount of the pods (workload identity for an s3:// or gs:// model store); the "
        "namespace's default when left out. Its API token is not mounted.",
        examples=["model-reader"],
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, max_length=8, description="Secrets with registry credentials for the image."
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=16, description="Node labels the pods require.", examples=[{"gpu": "a100"}]
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=16, description="Taints the pods tolerate (GPU nodes are usually tainted)."
    )
    affinity: Affinity | None = Field(default=None, description="Node and pod affinity of the pods.")
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None, max_length=4, description="How the pods spread over zones or nodes."
    )
    priority_class_name: ObjectName | None = Field(default=None, description="PriorityClass of the pods.")
    runtime_class_name: ObjectName | None = Field(default=None, description="RuntimeClass of the pods.")
    pod_annotations: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None,
        max_length=32,
        description="Extra pod annotations; the operator's own (prometheus.io/*, sluice.dev/*) win, and AppArmor "
        "or seccomp annotations are refused.",
        json_schema_extra={"x-kubernetes-validations": [POD_ANNOTATIONS_RULE]},
    )
    pod_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=16,
        description="Extra pod labels; the operator's (app.kubernetes.io/name, instance, managed-by, version and "
        "sluice.dev/*) are refused.",
        json_schema_extra={"x-kubernetes-validations": [POD_LABELS_RULE]},
    )
    startup_probe: StartupProbe | None = Field(
        default=None, description="Startup probe timing, for models that take long to download and load."
    )
    termination_grace_period_seconds: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Seconds a stopping pod gets; by default the preStop sleep, the server's drain timeout and a "
        "margin.",
    )
