"""spec.validation: the gate that scores the canary on a held-out dataset before any traffic."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.meta import ApiModel, Duration, cel, is_duration


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
                cel(
                    "has(self.configMapRef) != has(self.uri)",
                    "validation needs exactly one of configMapRef and uri",
                ),
                cel("has(self.min) || has(self.max)", "validation needs min, max or both"),
                cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max"),
                cel(
                    f"!{is_duration('timeout')} || duration(self.timeout) > duration('0s')",
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
