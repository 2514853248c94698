"""The ML gates before any live weight: the validation gate's score and the shadow phase's checks. Pure.

Validation: the adapter sends a labelled dataset to the canary and passes the predictions here
(`score`); `judge_validation` holds the score against spec.validation's bound. Shadow: the canary compares
itself with an in-process copy of the stable model on every mirrored request and exports the comparisons;
`shadow_check` judges one window of them (agreement, mean absolute difference) together with the canary's own
error rate and latency (`sluice.core.analysis.evaluate`). docs/ml-analysis.md explains both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from sluice.api.v1alpha1 import (
    AnalysisSpec,
    CheckResult,
    MetricResult,
    ShadowSpec,
    ValidationMetric,
    ValidationResult,
    ValidationSpec,
    Verdict,
)
from sluice.core.analysis import errored, evaluate, known, strongest_verdict
from sluice.core.plan import AnalysisReading, ShadowReading, ValidationReading

SHADOW_COMPARISONS = "shadowComparisons"
SHADOW_AGREEMENT = "shadowAgreement"
SHADOW_MEAN_ABS_DIFFERENCE = "shadowMeanAbsDifference"
"""Names of the shadow metrics in a CheckResult (camelCase, like the built-in ones)."""


class ScoreError(ValueError):
    """Predictions and labels cannot be scored (lengths differ, nothing to score, a non-numeric value)."""


def score(metric: ValidationMetric, predictions: Sequence[object], labels: Sequence[object]) -> float:
    """accuracy: the fraction of predictions equal to their label (compared as text when types differ, so 1 and
    "1" agree, and 1.0 and 1 too); mae / rmse: mean absolute / root mean squared error of numeric predictions."""
    if len(predictions) != len(labels):
        raise ScoreError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ScoreError("the dataset has no rows")
    if metric is ValidationMetric.ACCURACY:
        return sum(_same_label(p, y) for p, y in zip(predictions, labels, strict=True)) / len(labels)
    errors = []
    for row, (prediction, label) in enumerate(zip(predictions, labels, strict=True), start=1):
        try:
            errors.append(_number(prediction) - _number(label))
        except ScoreError:  # the values themselves are the dataset's or the canary's: not repeated
            raise ScoreError(f"row {row}: the prediction or the label is not a number") from None
    if metric is ValidationMetric.MAE:
        return sum(abs(e) for e in errors) / len(errors)
    return math.sqrt(sum(e * e for e in errors) / len(errors))


def _same_label(prediction: object, label: object) -> bool:
    if prediction == label:
        return True
    try:
        return _number(prediction) == _number(label)
    except ScoreError:
        return str(prediction) == str(label)


def _number(value: object) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ScoreError(f"a {type(value).__name__} is not a number")


def bound_text(spec: ValidationSpec) -> str:
    """`accuracy >= 0.85`, `mae <= 2.5`, or both bounds."""
    parts = []
    if spec.min is not None:
        parts.append(f"{spec.metric} >= {spec.min:g}")
    if spec.max is not None:
        parts.append(f"{spec.metric} <= {spec.max:g}")
    return " and ".join(parts)


def judge_validation(
    spec: ValidationSpec, reading: ValidationReading, *, version: str, time: datetime
) -> ValidationResult:
    """The gate's result: passed when the run scored and the score is within [min, max]."""
    if reading.error is not None or reading.score is None or math.isnan(reading.score):
        why = reading.error or "no score"
        return ValidationResult(
            version=version,
            time=time,
            metric=spec.metric,
            samples=reading.samples,
            passed=False,
            message=f"validation could not run: {why}",
        )
    value = reading.score
    below = spec.min is not None and value < spec.min
    above = spec.max is not None and value > spec.max
    passed = not (below or above)
    relation = "meets" if passed else "breaks"
    return ValidationResult(
        version=version,
        time=time,
        metric=spec.metric,
        score=value,
        samples=reading.samples,
        passed=passed,
        message=f"{spec.metric} {value:.4g} on {reading.samples} rows {relation} {bound_text(spec)}",
    )


def shadow_check(
    analysis: AnalysisSpec, shadow: ShadowSpec, reading: AnalysisReading, comparisons: ShadowReading, *, time: datetime
) -> CheckResult:
    """One shadow check (step 0, weight 0): the canary's error rate and latency on the mirrored requests
    (spec.analysis bounds; custom metrics too), and its agreement / mean absolute difference with stable."""
    base = evaluate(analysis, reading, time=time, step=0, weight=0)
    metrics = [*base.metrics, *_judge_comparisons(shadow, comparisons)]
    return CheckResult(time=time, step=0, weight=0, verdict=strongest_verdict(metrics), metrics=metrics)


def _judge_comparisons(shadow: ShadowSpec, reading: ShadowReading) -> list[MetricResult]:
    bounds: list[tuple[str, str, float | None, float | None, float | None]] = []
    if shadow.min_agreement is not None:
        bounds.append((SHADOW_AGREEMENT, "agreement", reading.agreement, shadow.min_agreement, None))
    if shadow.max_mean_abs_difference is not None:
        bounds.append(
            (
                SHADOW_MEAN_ABS_DIFFERENCE,
                "mean abs difference",
                reading.mean_abs_difference,
                None,
                shadow.max_mean_abs_difference,
            )
        )
    minimum = float(shadow.min_comparisons)
    if reading.error is not None:
        return errored(
            [(SHADOW_COMPARISONS, minimum, None), *((name, low, high) for name, _, _, low, high in bounds)],
            reading.error,
        )
    count = known(reading.comparisons)
    if count is None or count < minimum:
        shown = "no comparisons" if count is None else f"only {count:.6g} comparisons"
        counted = MetricResult(
            name=SHADOW_COMPARISONS,
            value=count,
            min=minimum,
            verdict=Verdict.INCONCLUSIVE,
            message=f"{shown}, fewer than shadow.minComparisons {shadow.min_comparisons}",
        )
        unjudged = [
            MetricResult(
                name=name, value=known(value), min=low, max=high, verdict=Verdict.INCONCLUSIVE,
                message=f"{label} not judged: too few comparisons",
            )
            for name, label, value, low, high in bounds
        ]  # fmt: skip
        return [counted, *unjudged]
    results = [
        MetricResult(
            name=SHADOW_COMPARISONS,
            value=count,
            min=minimum,
            verdict=Verdict.PASSED,
            message=f"{count:.6g} comparisons",
        )
    ]
    for name, label, value, low, high in bounds:
        results.append(_judge_bound(name, label, known(value), low, high))
    return results


def _judge_bound(name: str, label: str, value: float | None, low: float | None, high: float | None) -> MetricResult:
    if value is None:
        return MetricResult(name=name, min=low, max=high, verdict=Verdict.INCONCLUSIVE, message=f"{label}: no data")
    if low is not None and value < low:
        verdict, message = Verdict.FAILED, f"shadow {label} {value:.4g} below shadow.minAgreement {low:g}"
    elif high is not None and value > high:
        verdict, message = Verdict.FAILED, f"shadow {label} {value:.4g} above shadow.maxMeanAbsDifference {high:g}"
    else:
        verdict, message = Verdict.PASSED, f"shadow {label} {value:.4g} within bounds"
    return MetricResult(name=name, value=value, min=low, max=high, verdict=verdict, message=message)
