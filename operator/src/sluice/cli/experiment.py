"""`kubectl sluice status` for spec.experiment: the split, the samples per arm and the decision so far."""

from __future__ import annotations

from datetime import datetime

from sluice.api.v1alpha1 import ExperimentMetricResult, ModelDeployment
from sluice.cli.times import age


def _metric(result: ExperimentMetricResult) -> str:
    if result.share_a is None or result.share_b is None or result.lower is None or result.upper is None:
        return f"{result.name}: no data yet"
    return (
        f"{result.name}: A {result.share_a:.4g}, B {result.share_b:.4g} (B - A in [{result.lower:.3g}, "
        f"{result.upper:.3g}]): {result.comparison}"
    )


def experiment_fields(md: ModelDeployment, now: datetime) -> list[tuple[str, str]]:
    """The Experiment, Samples and Metrics lines (none without spec.experiment or an experiment in status)."""
    spec, experiment = md.spec.experiment, md.status.experiment
    if spec is None or experiment is None:
        return []
    split = f"A {100 - experiment.split}% / B {experiment.split}% of entity keys (header {spec.sticky_by.header})"
    fields = [("Experiment", f"{experiment.id}: {split}; decision {experiment.decision}")]
    ends = [f"duration {spec.duration}"] if spec.duration else []
    ends += [f"{spec.min_samples} per arm"] if spec.min_samples else []
    started = f"started {age(now - experiment.started_at)} ago" if experiment.started_at else "not started"
    fields.append(
        ("Samples", f"A {experiment.samples_a}, B {experiment.samples_b}; {started}; ends at {' or '.join(ends)}")
    )
    if experiment.metrics:
        fields.append(("Metrics", "; ".join(_metric(result) for result in experiment.metrics)))
    return fields
