"""spec.experiment, pure: the assignment the stable track runs, when a check is due, and the decision rule.

The rule (docs/experiments.md, Decision rule): each metric is a share, an arm's hits over the requests it answered;
the judge's confidence sequence (`sluice.core.judge.half_width`, at the experiment's confidence) bounds B's share
minus A's. B is Better on a metric when the whole interval lies on the goal's side of 0 (below for Decrease, above
for Increase), Worse when it lies on the other side, else Undecided. The experiment decides once it is over
(duration elapsed, or both arms answered minSamples): RollBack when B is Worse on any metric, Promote when it is
Better on at least one and Worse on none, else Keep (the stable version stays). Before that it only reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import (
    Comparison,
    ExperimentDecision,
    ExperimentMetric,
    ExperimentMetricResult,
    ExperimentSpec,
    Goal,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
)
from sluice.core.judge import Track, half_width
from sluice.core.plan import Assignment, ExperimentReading

SCALE = 0.05
"""The mixture scale of the confidence sequence: the difference of shares it is tightest at (5 points)."""
ID_LENGTH = 16


def experimenting(status: ModelDeploymentStatus) -> bool:
    """Phase Experimenting, or paused in it: the stable track assigns the arms."""
    frozen = status.phase is Phase.PAUSED and status.paused_in is Phase.EXPERIMENTING
    return status.phase is Phase.EXPERIMENTING or frozen


def experiment_id(status: ModelDeploymentStatus) -> str | None:
    """The experiment's id: the candidate revision's hash (its first 16 hex digits), fixed for its life."""
    revision = status.canary_revision
    return revision.hash[:ID_LENGTH] if revision is not None else None


def assignment(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Assignment | None:
    """What the stable track's server runs during an experiment; None outside one."""
    experiment, identifier = spec.experiment, experiment_id(status)
    if experiment is None or identifier is None or status.canary_version is None or not experimenting(status):
        return None
    return Assignment(
        experiment_id=identifier,
        header=experiment.sticky_by.header.lower(),
        split=experiment.split,
        candidate_version=status.canary_version,
        exposure_log=experiment.exposure_log,
    )


def experiment_window(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> timedelta | None:
    """The time since the experiment started when a check is due at `now` (every rollout.interval), else None."""
    due = next_experiment_check_at(spec, status)
    if due is None or now < due or status.experiment is None or status.experiment.started_at is None:
        return None
    return max(now - status.experiment.started_at, timedelta(seconds=1))


def next_experiment_check_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    experiment = status.experiment
    if status.phase is not Phase.EXPERIMENTING or experiment is None or experiment.started_at is None:
        return None
    last = max(experiment.started_at, status.last_check_time or experiment.started_at)
    return last + parse_duration(spec.rollout.interval)


def over(experiment: ExperimentSpec, started_at: datetime, samples: tuple[int, int], now: datetime) -> bool:
    """Whether the experiment has run its duration, or both arms have answered minSamples."""
    if experiment.duration is not None and now >= started_at + parse_duration(experiment.duration):
        return True
    return experiment.min_samples is not None and min(samples) >= experiment.min_samples


def compare(metric: ExperimentMetric, samples: tuple[float, float], hits: tuple[float | None, float | None],
            confidence: float) -> ExperimentMetricResult:  # fmt: skip
    """One metric, B against A (hits without data count as none: a share of 0)."""
    tracks = [Track(requests=n, hits=min(h or 0.0, n)) for n, h in zip(samples, hits, strict=True)]
    if min(samples) <= 0:
        return ExperimentMetricResult(name=metric.name, comparison=Comparison.UNDECIDED)
    a, b = tracks
    estimate = b.share() - a.share()
    width = half_width(a.variance() + b.variance(), alpha=1 - confidence, scale=SCALE)
    lower, upper = estimate - width, estimate + width
    above, below = lower > 0, upper < 0
    better, worse = (above, below) if metric.goal is Goal.INCREASE else (below, above)
    comparison = Comparison.BETTER if better else Comparison.WORSE if worse else Comparison.UNDECIDED
    return ExperimentMetricResult(
        name=metric.name,
        share_a=round(a.share(), 6),
        share_b=round(b.share(), 6),
        lower=round(lower, 6),
        upper=round(upper, 6),
        comparison=comparison,
    )


def judge_experiment(
    experiment: ExperimentSpec, reading: ExperimentReading
) -> tuple[tuple[int, int], list[ExperimentMetricResult]]:
    """The samples per arm and each metric's comparison on one reading."""
    samples = (reading.samples_a or 0.0, reading.samples_b or 0.0)
    hits: Mapping[str, tuple[float | None, float | None]] = reading.hits
    results = [
        compare(metric, samples, hits.get(metric.name, (None, None)), experiment.confidence)
        for metric in experiment.metrics
    ]
    return (round(samples[0]), round(samples[1])), results


def verdict(results: list[ExperimentMetricResult]) -> ExperimentDecision:
    """The decision at the experiment's end: RollBack on any Worse, Promote on a Better without Worse, else Keep."""
    comparisons = {result.comparison for result in results}
    if Comparison.WORSE in comparisons:
        return ExperimentDecision.ROLL_BACK
    if Comparison.BETTER in comparisons:
        return ExperimentDecision.PROMOTE
    return ExperimentDecision.KEEP
