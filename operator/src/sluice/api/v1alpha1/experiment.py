"""spec.experiment: a sticky A/B experiment of the candidate (B) against the stable version (A), and its status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.matching import TOKEN_PATTERN
from sluice.api.v1alpha1.meta import MIN_INTERVAL, ApiModel, Duration, cel, is_duration

MAX_EXPERIMENT_METRICS = 8
MAX_DURATION = "720h"
"""30 days: A/B tests often run for weeks (Prometheus must keep the exposure counts that long)."""


class Goal(StrEnum):
    """Which way an experiment metric's share should move for the candidate to win."""

    INCREASE = "Increase"
    DECREASE = "Decrease"


class StickyBy(ApiModel):
    """Where the entity key of a request is (the same key always gets the same arm)."""

    header: str = Field(
        min_length=1,
        max_length=256,
        pattern=TOKEN_PATTERN,
        description="The request header whose value is the entity key (a user or account id, say).",
        examples=["x-user-id"],
    )


class ExperimentMetric(ApiModel):
    """A share compared between the arms: hits (the query, per arm) over the arm's answered requests."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z]([a-z0-9_-]*[a-z0-9])?$",
        description="Metric name, unique among the experiment's metrics.",
        examples=["errors"],
    )
    query: str = Field(
        min_length=1,
        max_length=4096,
        description="PromQL returning one arm's hits (a count) since the experiment started. Placeholders: "
        "{{namespace}}, {{name}}, {{arm}} (A or B), {{version}} and {{track}} (the arm's), {{window}} (the time "
        "since the experiment started, e.g. 95s). Divided by the arm's answered requests, it is the arm's share.",
        examples=[
            'sum(last_over_time(sluice_serving_experiment_exposures_total{namespace="{{namespace}}",model="{{name}}",'
            'arm="{{arm}}",code=~"5.."}[{{window}}]))'
        ],
    )
    goal: Goal = Field(
        default=Goal.DECREASE,
        description="Decrease (errors, say: fewer is better, the default) or Increase (conversions, say).",
    )


class ExperimentSpec(ApiModel):
    """Run the candidate (B) beside the stable version (A) at a fixed split, each entity key always on the same
    arm, for a fixed time or number of requests; then promote, keep stable, or roll back by the metrics
    (docs/experiments.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.duration) || has(self.minSamples)", "an experiment needs duration, minSamples or both"),
                cel(
                    f"!has(self.duration) || !{is_duration('duration')} "
                    f"|| (duration(self.duration) >= duration('{MIN_INTERVAL}') "
                    f"&& duration(self.duration) <= duration('{MAX_DURATION}'))",
                    f"duration must be between {MIN_INTERVAL} and {MAX_DURATION}",
                    ".duration",
                ),
            ]
        }
    )

    duration: Duration | None = Field(
        default=None,
        description="How long the experiment runs once both arms serve (1s..720h, 30 days; Prometheus must keep "
        "the exposure counts that long); with minSamples, it ends at whichever comes first.",
        examples=["1h"],
    )
    min_samples: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="Answered requests each arm needs before the experiment decides.",
        examples=[5000],
    )
    split: int = Field(
        default=50, ge=1, le=99, description="Percentage of entity keys assigned to the candidate (B), 1..99."
    )
    sticky_by: StickyBy = Field(description="The entity key of a request; requests without it are served by A.")
    metrics: list[ExperimentMetric] = Field(
        min_length=1,
        max_length=MAX_EXPERIMENT_METRICS,
        description="The shares the arms are compared on; B wins when it is better on one and worse on none.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    confidence: float = Field(
        default=0.95,
        ge=0.5,
        le=0.999,
        description="Confidence of each comparison (the judge's confidence sequence, docs/judge.md).",
    )
    exposure_log: bool = Field(
        default=False,
        description="Log one structured exposure line per assigned request on the stable server (the key's hash, "
        "arm, version, time), for joining with business outcomes offline. Off when left out.",
    )


class ExperimentDecision(StrEnum):
    """Where an experiment stands."""

    STARTING = "Starting"
    """Both arms are not yet serving with the assignment in place."""
    RUNNING = "Running"
    PROMOTE = "Promote"
    KEEP = "Keep"
    ROLL_BACK = "RollBack"


class Comparison(StrEnum):
    """One metric's verdict, B against A."""

    BETTER = "Better"
    WORSE = "Worse"
    UNDECIDED = "Undecided"


class ExperimentMetricResult(ApiModel):
    """One metric at the experiment's last check."""

    name: str = Field(description="The metric's name.")
    share_a: float | None = Field(default=None, description="A's hits over A's requests; none without data.")
    share_b: float | None = Field(default=None, description="B's hits over B's requests; none without data.")
    lower: float | None = Field(default=None, description="Lower end of the interval of B's share minus A's.")
    upper: float | None = Field(default=None, description="Upper end of the interval of B's share minus A's.")
    comparison: Comparison = Field(description="Better, Worse or Undecided, B against A.")


class ExperimentStatus(ApiModel):
    """The running (or last) experiment: its split, samples per arm and the decision so far."""

    id: str = Field(max_length=64, description="The experiment's id (hashed with each entity key).")
    split: int = Field(ge=0, le=100, description="Percentage of entity keys assigned to B.")
    started_at: datetime | None = Field(default=None, description="When both arms served with the assignment.")
    samples_a: int = Field(default=0, ge=0, description="Requests A answered for assigned keys.")
    samples_b: int = Field(default=0, ge=0, description="Requests B answered for assigned keys.")
    decision: ExperimentDecision = Field(description="Starting, Running, Promote, Keep or RollBack.")
    metrics: list[ExperimentMetricResult] = Field(default_factory=list, description="Per-metric results.")
