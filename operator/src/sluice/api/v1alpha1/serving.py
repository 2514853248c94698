"""spec.model and spec.serving: the model artifact and how its pods run."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.meta import ApiModel, Quantity, cel


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
                cel(
                    "self.format != 'sklearn' || has(self.digest)",
                    "digest is required when format is sklearn: pickle-based models load only with a pinned "
                    "sha256 digest",
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
        pattern=r"^(file|https?|s3|gs|pvc)://\S+$",
        description="Where the artifact lives: file://, http(s)://, s3://, gs:// or pvc://<claim>/<path>.",
        examples=["https://models.example.com/fraud/1.4.0/model.onnx", "s3://models/fraud/1.4.0/model.joblib"],
    )
    format: ModelFormat = Field(description="Artifact format: onnx or sklearn (joblib).")
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[a-f0-9]{64}$",
        description="sha256 digest of the artifact, checked before loading. Required for sklearn and for http:// uris.",
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
