"""One analysis check: a canary's metric reading judged against the spec's bounds.

Verdicts, strongest first: Errored (Prometheus did not answer), Failed (a bound is broken), Inconclusive (too
little traffic or no data), Passed. The built-in metrics (error rate, p99 latency) are judged only when the
check window saw at least `minRequests` requests; with fewer they are Inconclusive whatever their values, since
a handful of requests proves nothing either way. Custom metrics are judged on their own values (they need not be
request-based, e.g. a drift score); a custom metric without data is Inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import AnalysisSpec, CheckResult, CustomMetric, MetricResult, Verdict
from sluice.core.plan import AnalysisReading

REQUEST_COUNT = "requestCount"
ERROR_RATE = "errorRate"
LATENCY_P99 = "latencyP99"
"""Names of the built-in metrics; camelCase, so they never collide with custom names (lowercase by schema)."""

_VERDICT_STRENGTH = (Verdict.ERRORED, Verdict.FAILED, Verdict.INCONCLUSIVE, Verdict.PASSED)


def evaluate(
    analysis: AnalysisSpec, reading: AnalysisReading, *, time: datetime, step: int, weight: int
) -> CheckResult:
    """Judge `reading` against `analysis`; the result records every value, bound and verdict.

    MetricResult values and bounds are in the metric's unit: a count, a fraction, seconds (latency).
    """
    latency_bound = parse_duration(analysis.max_latency_p99).total_seconds()
    if reading.error is not None:
        metrics = [
            MetricResult(name=name, min=low, max=high, verdict=Verdict.ERRORED, message=f"no answer: {reading.error}")
            for name, low, high in [
                (REQUEST_COUNT, float(analysis.min_requests), None),
                (ERROR_RATE, None, analysis.max_error_rate),
                (LATENCY_P99, None, latency_bound),
                *((metric.name, metric.min, metric.max) for metric in analysis.metrics or []),
            ]
        ]
    else:
        requests = _judge_request_count(analysis.min_requests, _value(reading.request_count))
        enough_traffic = requests.verdict is Verdict.PASSED
        metrics = [
            requests,
            _judge_traffic_metric(
                ERROR_RATE,
                "error rate",
                _value(reading.error_rate),
                bound=analysis.max_error_rate,
                enough_traffic=enough_traffic,
                show=_number,
            ),
            _judge_traffic_metric(
                LATENCY_P99,
                "latency p99",
                _value(reading.latency_p99_seconds),
                bound=latency_bound,
                enough_traffic=enough_traffic,
                show=_seconds,
            ),
            *(_judge_custom(metric, _value(reading.custom.get(metric.name))) for metric in analysis.metrics or []),
        ]
    verdict = next(strength for strength in _VERDICT_STRENGTH if any(m.verdict is strength for m in metrics))
    return CheckResult(time=time, step=step, weight=weight, verdict=verdict, metrics=metrics)


def summary(check: CheckResult) -> str:
    """What decided the check, e.g. `error rate 0.31 above maxErrorRate 0.01`.

    The distinct messages of the metrics whose verdict is the check's; too few requests is told once, without the
    metrics it left unjudged.
    """
    deciding = [metric for metric in check.metrics if metric.verdict is check.verdict]
    too_few_requests = [metric for metric in deciding if metric.name == REQUEST_COUNT and metric.value is not None]
    return "; ".join(dict.fromkeys(metric.message for metric in too_few_requests or deciding))


def _value(value: float | None) -> float | None:
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
            message=f"only {_number(count)} requests, fewer than minRequests {min_requests}",
        )
    return MetricResult(
        name=REQUEST_COUNT, value=count, min=bound, verdict=Verdict.PASSED, message=f"{_number(count)} requests"
    )


def _judge_traffic_metric(
    name: str, label: str, value: float | None, *, bound: float, enough_traffic: bool, show: Callable[[float], str]
) -> MetricResult:
    """Judge a request-based metric (`label` and bound as in `error rate 0.31 above maxErrorRate 0.01`)."""
    if value is None:
        return MetricResult(name=name, max=bound, verdict=Verdict.INCONCLUSIVE, message=f"{label}: no data")
    bound_name = f"max{name[0].upper()}{name[1:]}"
    if not enough_traffic:
        return MetricResult(
            name=name,
            value=value,
            max=bound,
            verdict=Verdict.INCONCLUSIVE,
            message=f"{label} {show(value)} not judged: too few requests",
        )
    failed = value > bound
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
    return f"{value:.4g}s" if value >= 1 else f"{value * 1000:.4g}ms"
