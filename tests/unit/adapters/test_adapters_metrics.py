"""The Prometheus metrics provider against a tiny local HTTP server that answers like Prometheus (error paths)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from sluice.adapters.metrics import (
    CanaryQuery,
    PrometheusProvider,
    builtin_queries,
    drift_queries,
    render_template,
    unreachable,
)
from sluice.core.drift import CountKind, Counts
from sluice.core.plan import Comparison, TrackCounts

QUERY = CanaryQuery(
    namespace="ml", name="fraud", version="1.4.0", window=timedelta(minutes=1), custom={"acc": "acc{v='{{version}}'}"}
)
Answer = Callable[[str], tuple[int, Any]]
"""PromQL -> (HTTP status, JSON body)."""


def vector(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]}}


EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


class FakePrometheus:
    def __init__(self) -> None:
        self.answer: Answer = lambda _promql: (200, vector("1"))
        self.queries: list[str] = []
        self.ready = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/-/ready":
                    self.send_response(fake.ready)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                promql = parse_qs(urlparse(self.path).query)["query"][0]
                fake.queries.append(promql)
                status, body = fake.answer(promql)
                payload = json.dumps(body).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client timed out
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def read(url: str, timeout: float = 5.0) -> Any:
    return asyncio.run(PrometheusProvider(url, timeout).read(QUERY))


def test_the_builtin_queries_select_the_canary_of_the_version() -> None:
    queries = builtin_queries(QUERY)
    selector = 'namespace="ml",model="fraud",version="1.4.0",track="canary"'
    assert queries["request_count"] == f"sum(increase(sluice_serving_requests_total{{{selector}}}[1m]))"
    assert f'sluice_serving_requests_total{{{selector},code=~"5.."}}[1m]' in queries["error_rate"]
    assert "or vector(0)" in queries["error_rate"]
    fallbacks = f"sluice_serving_fallback_responses_total{{{selector}}}[1m]"
    assert f"(sum(rate({fallbacks})) or vector(0))" in queries["error_rate"], "fallback answers count as errors"
    assert queries["latency_p99_seconds"].startswith("histogram_quantile(0.99, sum by (le) (rate(")
    assert "sluice_serving_request_duration_seconds_bucket" in queries["latency_p99_seconds"]


def test_placeholders_are_filled() -> None:
    template = "x{a='{{namespace}}',b='{{ name }}',c='{{version}}',d='{{track}}'}[{{interval}}]"
    assert render_template(template, QUERY) == "x{a='ml',b='fraud',c='1.4.0',d='canary'}[1m]"


def test_values_are_read(fake_prometheus: FakePrometheus) -> None:
    values = {"increase": "120", "5..": "0.02", "histogram_quantile": "0.25", "acc": "0.97"}
    fake_prometheus.answer = lambda promql: (200, vector(next(v for k, v in values.items() if k in promql)))
    reading = read(fake_prometheus.url)
    assert reading.error is None
    assert (reading.request_count, reading.error_rate, reading.latency_p99_seconds) == (120.0, 0.02, 0.25)
    assert reading.custom == {"acc": 0.97}
    assert "acc{v='1.4.0'}" in fake_prometheus.queries


def test_no_data_and_nan_read_as_none(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.answer = lambda promql: (200, EMPTY if "increase" in promql else vector("NaN"))
    reading = read(fake_prometheus.url)
    assert reading.error is None
    assert (reading.request_count, reading.error_rate, reading.latency_p99_seconds) == (None, None, None)
    assert reading.custom == {"acc": None}


def test_an_error_response_is_an_error_reading(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.answer = lambda _promql: (400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    reading = read(fake_prometheus.url)
    assert reading.error == f"Prometheus at {fake_prometheus.url} answered a query with HTTP 400; check its logs"
    assert "parse error" not in reading.error, "an answer's body is never copied into status"


def test_several_series_for_one_value_is_an_error_reading(fake_prometheus: FakePrometheus) -> None:
    two = {"status": "success", "data": {"resultType": "vector", "result": [vector("1")["data"]["result"][0]] * 2}}
    fake_prometheus.answer = lambda promql: (200, two if "acc" in promql else vector("1"))
    reading = read(fake_prometheus.url)
    assert reading.error is not None
    assert "2 series" in reading.error


def test_an_unreachable_prometheus_is_an_error_reading(fake_prometheus: FakePrometheus) -> None:
    url = fake_prometheus.url
    fake_prometheus.server.shutdown()
    fake_prometheus.server.server_close()
    reading = read(url)
    assert reading.error == (
        f"cannot connect to Prometheus at {url}: set the operator's --prometheus-url (SLUICE_PROMETHEUS_URL; "
        "`make run-local` uses the local one) or spec.analysis.prometheus.url"
    )


def test_the_start_check_names_an_unreachable_or_unready_prometheus_and_the_fix(
    fake_prometheus: FakePrometheus,
) -> None:
    url = fake_prometheus.url
    assert unreachable(url, 2) is None
    fake_prometheus.ready = 503
    assert unreachable(url, 2) == f"Prometheus at {url} is not ready (HTTP 503)"
    fake_prometheus.server.shutdown()
    fake_prometheus.server.server_close()

    problem = unreachable(url, 2)

    assert problem == (
        f"cannot connect to Prometheus at {url}: set the operator's --prometheus-url (SLUICE_PROMETHEUS_URL; "
        "`make run-local` uses the local one) or spec.analysis.prometheus.url"
    )


def test_a_slow_prometheus_times_out(fake_prometheus: FakePrometheus) -> None:
    def slow(_promql: str) -> tuple[int, Any]:
        time.sleep(2)
        return 200, vector("1")

    fake_prometheus.answer = slow
    started = time.monotonic()
    reading = read(fake_prometheus.url, timeout=0.3)
    assert reading.error == f"Prometheus at {fake_prometheus.url} timed out (no answer within 0.3s); is it overloaded?"
    assert time.monotonic() - started < 1.9


DRIFT_QUERY = CanaryQuery(
    namespace="ml",
    name="fraud",
    version="1.4.0",
    window=timedelta(seconds=30),
    stable_version="1.3.0",
    predictions=True,
    features=True,
)


def samples(*rows: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [1, value]} for labels, value in rows]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_the_drift_queries_read_canary_and_stable_over_the_same_window() -> None:
    queries = drift_queries(DRIFT_QUERY)
    canary, stable = queries["classes"]
    assert canary == (
        "sum by (class) (increase(sluice_serving_predicted_class_total"
        '{namespace="ml",model="fraud",version="1.4.0",track="canary"}[30s]))'
    )
    assert 'version="1.3.0",track="stable"}[30s]' in stable
    assert queries["prediction_buckets"][0].startswith("sum by (le) (increase(sluice_serving_predictions_bucket{")
    assert queries["feature_buckets"][1].startswith(
        "sum by (feature, le) (increase(sluice_serving_input_feature_bucket{"
    )


def test_class_counts_and_feature_buckets_are_read_per_side(fake_prometheus: FakePrometheus) -> None:
    def answer(promql: str) -> tuple[int, Any]:
        canary = 'track="canary"' in promql
        if "predicted_class" in promql:
            return 200, samples(({"class": "0"}, "20" if canary else "50"), ({"class": "1"}, "80" if canary else "50"))
        if "input_feature" in promql:
            return 200, samples(({"feature": "3", "le": "0.0"}, "4"), ({"feature": "3", "le": "+Inf"}, "NaN"))
        if "predictions_bucket" in promql:
            raise AssertionError("prediction buckets are read only for a model without class counts")
        return 200, vector("1")

    fake_prometheus.answer = answer
    reading = asyncio.run(PrometheusProvider(fake_prometheus.url, 5).read(DRIFT_QUERY))
    assert reading.error is None
    assert reading.predictions == Counts(CountKind.CLASSES, {"0": 20, "1": 80}, {"0": 50, "1": 50})
    assert reading.features == {"3": Counts(CountKind.BUCKETS, {"0.0": 4}, {"0.0": 4})}


def test_prediction_buckets_when_there_are_no_classes_and_none_without_series(fake_prometheus: FakePrometheus) -> None:
    buckets = samples(({"le": "0.0"}, "3"), ({"le": "+Inf"}, "9"))
    fake_prometheus.answer = lambda promql: (
        (200, buckets) if "predictions_bucket" in promql else (200, EMPTY if "by (" in promql else vector("1"))
    )
    reading = asyncio.run(PrometheusProvider(fake_prometheus.url, 5).read(DRIFT_QUERY))
    assert reading.predictions == Counts(CountKind.BUCKETS, {"0.0": 3, "+Inf": 9}, {"0.0": 3, "+Inf": 9})
    fake_prometheus.answer = lambda promql: (200, EMPTY if "by (" in promql else vector("1"))
    reading = asyncio.run(PrometheusProvider(fake_prometheus.url, 5).read(DRIFT_QUERY))
    assert (reading.error, reading.predictions, reading.features) == (None, None, {})


def test_without_drift_bounds_no_distribution_is_queried(fake_prometheus: FakePrometheus) -> None:
    read(fake_prometheus.url)
    assert not [promql for promql in fake_prometheus.queries if "by (class)" in promql or "input_feature" in promql]


COMPARE_QUERY = CanaryQuery(
    namespace="ml", name="fraud", version="1.4.0", window=timedelta(minutes=7), stable_version="1.3.0", compare=True
)


def test_compare_to_stable_reads_both_tracks_requests_errors_and_latency_buckets(
    fake_prometheus: FakePrometheus,
) -> None:
    def answer(promql: str) -> tuple[int, Any]:
        canary = 'track="canary"' in promql
        if promql.startswith("sum by (le)"):
            return 200, samples(
                ({"le": "0.25"}, "90" if canary else "290"), ({"le": "+Inf"}, "100" if canary else "300")
            )
        if "or vector(0)" in promql and "increase(" in promql:
            return 200, vector("8" if canary else "9")
        if promql.startswith("sum(increase(sluice_serving_requests_total{"):
            return 200, vector("100" if canary else "300")
        return 200, vector("1")

    fake_prometheus.answer = answer
    reading = asyncio.run(PrometheusProvider(fake_prometheus.url, 5).read(COMPARE_QUERY))
    assert reading.error is None
    assert reading.comparison == Comparison(
        canary=TrackCounts(requests=100, errors=8, latency_buckets={"0.25": 90, "+Inf": 100}),
        stable=TrackCounts(requests=300, errors=9, latency_buckets={"0.25": 290, "+Inf": 300}),
    )
    stable_queries = [promql for promql in fake_prometheus.queries if 'version="1.3.0",track="stable"}[7m]' in promql]
    assert len(stable_queries) == 3


def test_without_compare_to_stable_the_stable_track_is_not_queried(fake_prometheus: FakePrometheus) -> None:
    reading = read(fake_prometheus.url)
    assert reading.comparison is None
    assert not [promql for promql in fake_prometheus.queries if 'track="stable"' in promql]
