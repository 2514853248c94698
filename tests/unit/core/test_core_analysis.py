"""One analysis check: readings judged against the spec's bounds."""

from __future__ import annotations

from sluice.api.v1alpha1 import AnalysisSpec, CheckResult, Verdict
from sluice.core.analysis import ERROR_RATE, LATENCY_P99, REQUEST_COUNT, evaluate, summary
from sluice.core.plan import AnalysisReading
from unit.core.support import T0

ANALYSIS = AnalysisSpec.model_validate(
    {
        "maxErrorRate": 0.01,
        "maxLatencyP99": "500ms",
        "minRequests": 20,
        "metrics": [{"name": "auc", "query": "q", "min": 0.8}],
    }
)


def check(reading: AnalysisReading) -> CheckResult:
    return evaluate(ANALYSIS, reading, time=T0, step=1, weight=25)


def verdicts(result: CheckResult) -> dict[str, Verdict]:
    return {metric.name: metric.verdict for metric in result.metrics}


def test_a_reading_within_every_bound_passes_and_records_values_and_bounds() -> None:
    result = check(AnalysisReading(request_count=120, error_rate=0.002, latency_p99_seconds=0.12, custom={"auc": 0.91}))

    assert result.verdict is Verdict.PASSED
    assert (result.step, result.weight, result.time) == (1, 25, T0)
    assert [(metric.name, metric.value, metric.min, metric.max) for metric in result.metrics] == [
        (REQUEST_COUNT, 120, 20, None),
        (ERROR_RATE, 0.002, None, 0.01),
        (LATENCY_P99, 0.12, None, 0.5),
        ("auc", 0.91, 0.8, None),
    ]


def test_latency_above_its_bound_fails_with_a_message_naming_value_and_bound() -> None:
    result = check(AnalysisReading(request_count=120, error_rate=0.0, latency_p99_seconds=0.812, custom={"auc": 0.9}))

    assert result.verdict is Verdict.FAILED
    assert summary(result) == "latency p99 812ms above maxLatencyP99 500ms"


def test_a_model_quality_metric_below_its_minimum_fails() -> None:
    result = check(AnalysisReading(request_count=120, error_rate=0.0, latency_p99_seconds=0.1, custom={"auc": 0.61}))

    assert result.verdict is Verdict.FAILED
    assert summary(result) == "auc 0.61 below min 0.8"


def test_too_few_requests_leaves_the_traffic_metrics_unjudged() -> None:
    result = check(AnalysisReading(request_count=3, error_rate=0.5, latency_p99_seconds=2.0, custom={"auc": 0.9}))

    assert result.verdict is Verdict.INCONCLUSIVE
    assert verdicts(result) == {
        REQUEST_COUNT: Verdict.INCONCLUSIVE,
        ERROR_RATE: Verdict.INCONCLUSIVE,
        LATENCY_P99: Verdict.INCONCLUSIVE,
        "auc": Verdict.PASSED,
    }
    assert summary(result) == "only 3 requests, fewer than minRequests 20"


def test_a_custom_metric_is_judged_on_its_own_even_with_little_traffic() -> None:
    result = check(AnalysisReading(request_count=3, error_rate=0.0, latency_p99_seconds=0.1, custom={"auc": 0.2}))

    assert result.verdict is Verdict.FAILED


def test_missing_data_is_inconclusive() -> None:
    result = check(AnalysisReading(request_count=120, error_rate=None, latency_p99_seconds=0.1, custom={}))

    assert result.verdict is Verdict.INCONCLUSIVE
    assert summary(result) == "error rate: no data; auc: no data"


def test_an_unanswered_query_errors_the_whole_check_whatever_the_values() -> None:
    result = check(AnalysisReading(request_count=120, error_rate=0.9, error="timeout after 10s"))

    assert result.verdict is Verdict.ERRORED
    assert set(verdicts(result).values()) == {Verdict.ERRORED}
    assert summary(result) == "no answer: timeout after 10s"


def test_messages_read_in_one_unit_convention_percent_ms_and_whole_requests() -> None:
    result = check(
        AnalysisReading(request_count=98.639, error_rate=0.498107, latency_p99_seconds=0.00243, custom={"auc": 0.9})
    )

    assert [metric.message for metric in result.metrics[:3]] == [
        "99 requests",
        "error rate 49.8% above maxErrorRate 1%",
        "latency p99 2.43ms within maxLatencyP99 500ms",
    ]
