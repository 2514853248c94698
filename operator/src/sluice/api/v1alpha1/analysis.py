"""spec.analysis: the metrics every check reads and the bounds that judge them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.meta import MAX_CUSTOM_METRICS, ApiModel, Duration, cel, is_duration


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
                cel("has(self.min) || has(self.max)", "a custom metric needs min, max or both"),
                cel(
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
    """What happens after too many inconclusive checks in a row, or (compareToStable) at maxStepDuration without
    enough evidence."""

    ROLLBACK = "Rollback"
    HOLD = "Hold"


class CompareToStable(ApiModel):
    """Bounds on how much worse than the stable version the canary may be, judged on both tracks' requests over the
    same window with a sequential test (see docs/judge.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.maxErrorRateIncrease) || has(self.maxSlowRequestsIncrease)",
                    "compareToStable needs maxErrorRateIncrease, maxSlowRequestsIncrease or both",
                ),
                cel(
                    "has(self.slowerThan) == has(self.maxSlowRequestsIncrease)",
                    "slowerThan and maxSlowRequestsIncrease go together",
                ),
                cel(
                    f"!has(self.slowerThan) || !{is_duration('slowerThan')} || "
                    "duration(self.slowerThan) > duration('0s')",
                    "slowerThan must be greater than 0s",
                    ".slowerThan",
                ),
            ]
        }
    )

    max_error_rate_increase: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "Highest error-rate increase over the stable version, as a fraction (0.01: the canary may fail at most "
            "1 percentage point more of its requests than stable). Off when unset."
        ),
        examples=[0.01],
    )
    slower_than: Duration | None = Field(
        default=None,
        description=(
            "A request slower than this is slow (read from the latency histogram buckets: the largest bucket bound "
            "not above it). Set with maxSlowRequestsIncrease."
        ),
        examples=["250ms"],
    )
    max_slow_requests_increase: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "Highest increase of the share of slow requests (slowerThan) over the stable version, as a fraction "
            "(0.02: 2 percentage points). Off when unset."
        ),
        examples=[0.02],
    )


class AnalysisSpec(ApiModel):
    """What a canary must show at every step."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!{is_duration('maxLatencyP99')} || duration(self.maxLatencyP99) > duration('0s')",
                    "maxLatencyP99 must be greater than 0s",
                    ".maxLatencyP99",
                ),
                cel(
                    f"!{is_duration('maxStepDuration')} || duration(self.maxStepDuration) > duration('0s')",
                    "maxStepDuration must be greater than 0s",
                    ".maxStepDuration",
                ),
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
    on_inconclusive: InconclusivePolicy | None = Field(
        default=None,
        description=(
            "Rollback, or Hold the current step until data arrives or a person decides. Default: Rollback, and Hold "
            "when compareToStable is set (a step without enough evidence at maxStepDuration holds)."
        ),
    )
    compare_to_stable: CompareToStable | None = Field(
        default=None,
        description=(
            "Bounds relative to the stable version, judged with a sequential test: a step lasts until the evidence "
            "decides (at least rollout.interval, at most maxStepDuration). See docs/judge.md."
        ),
    )
    confidence: float = Field(
        default=0.95,
        ge=0.5,
        le=0.9999,
        description=(
            "How sure the compareToStable test must be before it decides: at 0.95 a canary no worse than its "
            "bounds is rolled back in at most 5% of steps, and one worse than its bounds promoted in at most 5%."
        ),
    )
    max_step_duration: Duration = Field(
        default="1h",
        description=(
            "compareToStable: the longest a step waits for enough evidence, counted from the canary's first "
            "request at the step's weight; then onInconclusive applies. Also caps the window the test reads."
        ),
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

    @property
    def inconclusive_policy(self) -> InconclusivePolicy:
        """onInconclusive, or its default: Hold with compareToStable, else Rollback."""
        if self.on_inconclusive is not None:
            return self.on_inconclusive
        return InconclusivePolicy.HOLD if self.compare_to_stable is not None else InconclusivePolicy.ROLLBACK
