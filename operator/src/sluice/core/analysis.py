"""One analysis check: a canary's metric reading judged against the spec's bounds.

Verdicts, strongest first: Errored (Prometheus did not answer), Failed (a bound is broken), Inconclusive (too
little traffic or no data), Passed. The built-in metrics (error rate, p99 latency) are judged only when the
check window saw at least `minRequests` requests; with fewer they are Inconclusive whatever their values, since
a handful of requests proves nothing either way. Custom metrics are judged on their own values (they need not be
request-based, e.g. a drift score); a custom metric without data is Inconclusive.

The drift metrics (`maxPredictionPSI`, `maxPredictionKS`, `maxFeaturePSI`, each judged only when its bound is set)
compare the canary with the stable version over the same window (`sluice.core.drift`); they are judged when both
sides saw at least `minDriftSamples` observations, else Inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import AnalysisSpec, CheckResult, CustomMetric, MetricResult, Verdict
from sluice.core.drift import Counts, aligned, ks, psi
from sluice.core.plan import AnalysisReading
from sluice.core.relative import ERROR_RATE_INCREASE, SLOW_REQUESTS_INCREASE, judge_relative, points, relative_bounds

REQUEST_COUNT = "requestCount"
ERROR_RATE = "errorRate"
LATENCY_P99 = "latencyP99"
PREDICTION_PSI = "predictionPSI"
PREDICTION_KS = "predictionKS"
FEATURE_PSI = "featurePSI"
"""Names of the built-in metrics; camelCase, so they never collide with custom names (lowercase by schema)."""

_VERDICT_STRENGTH = (Verdict.ERRORED, Verdict.FAILED, Verdict.INCONCLUSIVE, Verdict.PASSED)


def evaluate(
    analysis: AnalysisSpec, reading: AnalysisReading, *, time: datetime, step: int, weight: int, may_pass: bool = True
) -> CheckResult:
    """Judge `reading` against `analysis`; the result records every value, bound and verdict.

    MetricResult values and bounds are in the metric's unit: a count, a fraction, seconds (latency). The relative
    metrics of compareToStable (`sluice.core.relative`) pass only when `may_pass` (the step is old enough).
    """
    latency_bound = parse_duration(analysis.max_latency_p99).total_seconds()
    if reading.error is not None:
        metrics = errored(
            [
                (REQUEST_COUNT, float(analysis.min_requests), None),
                (ERROR_RATE, None, analysis.max_error_rate),
                (LATENCY_P99, None, latency_bound),
                *((name, None, bound) for name, bound in drift_bounds(analysis).items()),
                *((name, None, bound) for name, bound in relative_bounds(analysis.compare_to_stable).items()),
                *((metric.name, metric.min, metric.max) for metric in analysis.metrics or []),
            ],
            reading.error,
        )
    else:
        requests = _judge_request_count(analysis.min_requests, known(reading.request_count))
        enough_traffic = requests.verdict is Verdict.PASSED
        metrics = [
            requests,
            _judge_traffic_metric(
                ERROR_RATE,
                "error rate",
                known(reading.error_rate),
                bound=analysis.max_error_rate,
                enough_traffic=enough_traffic,
                show=_percent,
            ),
            _judge_traffic_metric(
                LATENCY_P99,
                "latency p99",
                known(reading.latency_p99_seconds),
                bound=latency_bound,
                enough_traffic=enough_traffic,
                show=_seconds,
            ),
            *_judge_drift(analysis, reading),
            *judge_relative(analysis, reading.comparison, may_pass=may_pass),
            *(_judge_custom(metric, known(reading.custom.get(metric.name))) for metric in analysis.metrics or []),
        ]
    return CheckResult(time=time, step=step, weight=weight, verdict=strongest_verdict(metrics), metrics=metrics)


def strongest_verdict(metrics: Iterable[MetricResult]) -> Verdict:
    """A check's verdict: the strongest of its metrics' (Errored, Failed, Inconclusive, Passed)."""
    verdicts = {metric.verdict for metric in metrics}
    return next(strength for strength in _VERDICT_STRENGTH if strength in verdicts)


def errored(bounds: Iterable[tuple[str, float | None, float | None]], error: str) -> list[MetricResult]:
    """Every metric of a check, as (name, min, max), Errored: the metrics backend did not answer."""
    return [
        MetricResult(name=name, min=low, max=high, verdict=Verdict.ERRORED, message=f"no answer: {error}")
        for name, low, high in bounds
    ]


def summary(check: CheckResult) -> str:
    """What decided the check, e.g. `error rate 31% above maxErrorRate 1%`.

    The distinct messages of the metrics whose verdict is the check's; too few requests is told once, without the
    metrics it left unjudged.
    """
    deciding = [metric for metric in check.metrics if metric.verdict is check.verdict]
    too_few_requests = [metric for metric in deciding if metric.name == REQUEST_COUNT and metric.value is not None]
    return "; ".join(dict.fromkeys(metric.message for metric in too_few_requests or deciding))


def known(value: float | None) -> float | None:
    """A reading's value; None for no data (None, or NaN as Prometheus gives for 0/0)."""
    return None if value is None or math.isnan(value) else value


def _judge_request_count(min_requests: int, count: float | None) -> MetricResult:
    bound = float(min_requests)
    if count is None:
        return MetricResult(name=REQUEST_COUNT, min=bound, verdict=Verdict.INCONCLUSIVE, message="no request data")
    if count < bound:
        return MetricResult(
            name=REQUEST_COUNT,
            value=count,
            min=bound,
            verdict=Verdict.INCONCLUSIVE,
            message=f"only {shown(REQUEST_COUNT, count)} requests, fewer than minRequests {min_requests}",
        )
    return MetricResult(
        name=REQUEST_COUNT,
        value=count,
        min=bound,
        verdict=Verdict.PASSED,
        message=f"{shown(REQUEST_COUNT, count)} requests",
    )


def _judge_traffic_metric(
    name: str, label: str, value: float | None, *, bound: float, enough_traffic: bool, show: Callable[[float], str]
) -> MetricResult:
    """Judge a request-based metric (`label` and bound as in `error rate 31% above maxErrorRate 1%`)."""
    if value is None:
        return _no_data(name, label, bound)
    return _judge_upper_bound(
        name, label, value, bound=bound, show=show, not_judged=None if enough_traffic else "too few requests"
    )


def _no_data(name: str, label: str, bound: float) -> MetricResult:
    return MetricResult(name=name, max=bound, verdict=Verdict.INCONCLUSIVE, message=f"{label}: no data")


def _judge_upper_bound(
    name: str, label: str, value: float, *, bound: float, show: Callable[[float], str], not_judged: str | None
) -> MetricResult:
    """Failed above `bound` (named `max<Name>` in the message), else Passed; Inconclusive, with the value, when
    there is a reason it is `not_judged`."""
    if not_judged is not None:
        return MetricResult(
            name=name,
            value=value,
            max=bound,
            verdict=Verdict.INCONCLUSIVE,
            message=f"{label} {show(value)} not judged: {not_judged}",
        )
    failed = value > bound
    bound_name = f"max{name[0].upper()}{name[1:]}"
    return MetricResult(
        name=name,
        value=value,
        max=bound,
        verdict=Verdict.FAILED if failed else Verdict.PASSED,
        message=f"{label} {show(value)} {'above' if failed else 'within'} {bound_name} {show(bound)}",
    )


def _judge_custom(metric: CustomMetric, value: float | None) -> MetricResult:
    if value is None:
        return MetricResult(
            name=metric.name,
            min=metric.min,
            max=metric.max,
            verdict=Verdict.INCONCLUSIVE,
            message=f"{metric.name}: no data",
        )
    if metric.min is not None and value < metric.min:
        verdict, message = Verdict.FAILED, f"{metric.name} {_number(value)} below min {_number(metric.min)}"
    elif metric.max is not None and value > metric.max:
        verdict, message = Verdict.FAILED, f"{metric.name} {_number(value)} above max {_number(metric.max)}"
    else:
        verdict, message = Verdict.PASSED, f"{metric.name} {_number(value)} within bounds"
    return MetricResult(name=metric.name, value=value, min=metric.min, max=metric.max, verdict=verdict, message=message)


def _number(value: float) -> str:
    return f"{value:.6g}"


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value >= 1 else f"{value * 1000:.3g}ms"


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def shown(name: str, value: float) -> str:
    """A metric's value as people read it everywhere (Events, conditions, history, the plugin, `analyze`): the
    error rate in percent, latency in ms or s, requests as a whole number, a relative metric in percentage points,
    anything else to 4 digits."""
    if name == ERROR_RATE:
        return _percent(value)
    if name == LATENCY_P99:
        return _seconds(value)
    if name == REQUEST_COUNT:
        return f"{value:.0f}"
    if name in (ERROR_RATE_INCREASE, SLOW_REQUESTS_INCREASE):
        return points(value)
    return f"{value:.4g}"


def drift_bounds(analysis: AnalysisSpec) -> dict[str, float]:
    """The drift metrics the spec turns on, by name, with their upper bounds."""
    bounds = {
        PREDICTION_PSI: analysis.max_prediction_psi,
        PREDICTION_KS: analysis.max_prediction_ks,
        FEATURE_PSI: analysis.max_feature_psi,
    }
    return {name: bound for name, bound in bounds.items() if bound is not None}


def _judge_drift(analysis: AnalysisSpec, reading: AnalysisReading) -> list[MetricResult]:
    bounds = drift_bounds(analysis)
    results: list[MetricResult] = []
    for name, label, distance in ((PREDICTION_PSI, "prediction PSI", psi), (PREDICTION_KS, "prediction KS", ks)):
        if name in bounds:
            results.append(
                _judge_distance(
                    name,
                    label,
                    reading.predictions,
                    distance=distance,
                    bound=bounds[name],
                    min_samples=analysis.min_drift_samples,
                )
            )
    if FEATURE_PSI in bounds:
        results.append(_judge_features(reading.features, bounds[FEATURE_PSI], analysis.min_drift_samples))
    return results


def _too_few(canary: float, stable: float, min_samples: int, what: str) -> str | None:
    """Why a distance is not judged on these sample sizes, if it is not."""
    if canary >= min_samples and stable >= min_samples:
        return None
    side, count = ("canary", canary) if canary < stable else ("stable", stable)
    return f"only {_number(count)} {side} {what}, fewer than minDriftSamples {min_samples}"


def _judge_distance(
    name: str,
    label: str,
    counts: Counts | None,
    *,
    distance: Callable[[tuple[float, ...], tuple[float, ...]], float],
    bound: float,
    min_samples: int,
) -> MetricResult:
    """Judge one distance between the canary's and the stable version's prediction distributions."""
    if counts is None:
        return _no_data(name, label, bound)
    sides = aligned(counts)
    too_few = _too_few(sides.canary_total, sides.stable_total, min_samples, "predictions")
    if sides.canary_total <= 0 or sides.stable_total <= 0:
        return MetricResult(
            name=name, max=bound, verdict=Verdict.INCONCLUSIVE, message=f"{label} not judged: {too_few}"
        )
    value = distance(sides.canary, sides.stable)
    return _judge_upper_bound(name, label, value, bound=bound, show=_number, not_judged=too_few)


def _judge_features(features: Mapping[str, Counts], bound: float, min_samples: int) -> MetricResult:
    """The largest PSI among the features with enough observations on both sides; the message names it."""
    if not features:
        return _no_data(FEATURE_PSI, "feature PSI", bound)
    judged: dict[str, float] = {}
    shortest: str | None = None
    for feature, counts in features.items():
        sides = aligned(counts)
        too_few = _too_few(sides.canary_total, sides.stable_total, min_samples, f"values of feature {feature}")
        if too_few is None:
            judged[feature] = psi(sides.canary, sides.stable)
        else:
            shortest = shortest or too_few
    if not judged:
        return MetricResult(
            name=FEATURE_PSI, max=bound, verdict=Verdict.INCONCLUSIVE, message=f"feature PSI not judged: {shortest}"
        )
    worst = max(judged, key=lambda feature: (judged[feature], feature))
    value = judged[worst]
    failed = value > bound
    of = f"worst of {len(judged)} features" + (f", {len(features) - len(judged)} too few values" if shortest else "")
    return MetricResult(
        name=FEATURE_PSI,
        value=value,
        max=bound,
        verdict=Verdict.FAILED if failed else Verdict.PASSED,
        message=(
            f"feature {worst} PSI {_number(value)} {'above' if failed else 'within'} maxFeaturePSI {_number(bound)} "
            f"({of})"
        ),
    )
