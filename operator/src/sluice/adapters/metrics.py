"""Canary metrics from Prometheus: request count, error rate and p99 latency over a window, plus custom PromQL,
plus (when drift bounds are set) the canary's and the stable version's prediction and input-feature counts.

Queries select the canary's series by the serving image's labels (`model` = the ModelDeployment's name,
`version`, `track="canary"`) and the `namespace` label the scrape configuration attaches; the drift queries
read the stable version's series (`track="stable"`) over the same window too. No data (empty result, NaN) reads
as None; a Prometheus that cannot answer gives `AnalysisReading(error=...)`. Queries are instant queries at
`CanaryQuery.at` (what-if replay, `sluice.cli.replay`) or now, each bounded in time and bytes (`capped_session`); an
error names the failure in fixed words (an HTTP status, an exception type), never Prometheus' answer.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import Retry

from sluice import contract
from sluice.adapters.bounded_http import MAX_RESPONSE_BYTES, RefusedAnswerError, capped_session
from sluice.api.durations import format_duration
from sluice.api.v1alpha1 import AnalysisSpec
from sluice.core.drift import CountKind, Counts
from sluice.core.plan import AnalysisReading, Comparison, TrackCounts

REQUESTS_METRIC = f"{contract.REQUESTS}_total"
FALLBACKS_METRIC = f"{contract.FALLBACK_RESPONSES}_total"
DURATION_BUCKETS_METRIC = f"{contract.REQUEST_DURATION_SECONDS}_bucket"
CLASSES_METRIC = f"{contract.PREDICTED_CLASS}_total"
PREDICTION_BUCKETS_METRIC = f"{contract.PREDICTIONS}_bucket"
FEATURE_BUCKETS_METRIC = f"{contract.INPUT_FEATURE}_bucket"
_PLACEHOLDER = re.compile(r"\{\{\s*(namespace|name|version|track|interval)\s*\}\}")


@dataclass(frozen=True)
class CanaryQuery:
    """Whose metrics to read, over which window, and the custom PromQL templates by metric name."""

    namespace: str
    name: str
    version: str
    window: timedelta
    custom: Mapping[str, str] = field(default_factory=dict)
    stable_version: str | None = None
    """The stable version, the baseline of the drift metrics."""
    predictions: bool = False
    """Read prediction counts of both sides (a prediction drift bound is set)."""
    features: bool = False
    """Read input-feature counts of both sides (maxFeaturePSI is set)."""
    at: datetime | None = None
    """Evaluation time of the instant queries; None: now."""
    compare: bool = False
    """Read both tracks' request, error and latency-bucket counts (compareToStable is set)."""


class MetricsProvider(Protocol):
    """Reads a canary's metrics; never raises for an unreachable or failing backend."""

    async def read(self, query: CanaryQuery) -> AnalysisReading: ...


class QueryError(Exception):
    """Prometheus answered, but not with one number."""


def canary_query(
    analysis: AnalysisSpec,
    *,
    namespace: str,
    name: str,
    canary_version: str,
    stable_version: str | None,
    window: timedelta,
    at: datetime | None = None,
) -> CanaryQuery:
    """What a check reads for `analysis`: the operator's live checks and `sluice.cli.replay` both build it here."""
    return CanaryQuery(
        namespace=namespace,
        name=name,
        version=canary_version,
        window=window,
        custom={metric.name: metric.query for metric in analysis.metrics or []},
        stable_version=stable_version,
        predictions=analysis.max_prediction_psi is not None or analysis.max_prediction_ks is not None,
        features=analysis.max_feature_psi is not None,
        at=at,
        compare=analysis.compare_to_stable is not None,
    )


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render_template(template: str, query: CanaryQuery) -> str:
    """A custom query with its {{namespace}}, {{name}}, {{version}}, {{track}} and {{interval}} filled in."""
    values = {
        "namespace": query.namespace,
        "name": query.name,
        "version": query.version,
        "track": contract.TRACK_CANARY,
        "interval": format_duration(query.window),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def series_selector(namespace: str, name: str, version: str, track: str) -> str:
    """The label matchers (without braces) of one version's series of a ModelDeployment, on one track."""
    return ",".join(
        f'{label}="{_label_value(value)}"'
        for label, value in (
            (contract.LABEL_NAMESPACE, namespace),
            (contract.LABEL_MODEL, name),
            (contract.LABEL_VERSION, version),
            (contract.LABEL_TRACK, track),
        )
    )


def _selector(query: CanaryQuery, version: str, track: str) -> str:
    return series_selector(query.namespace, query.name, version, track)


def prometheus_client(url: str, timeout: float) -> PrometheusConnect:
    """A client for one Prometheus whose queries are bounded by `timeout` seconds and MAX_RESPONSE_BYTES each, no
    redirect followed, without retries (a reading that fails is an Errored check, and the next check reads again)."""
    session = capped_session(MAX_RESPONSE_BYTES, timeout, "Prometheus' answer")
    return PrometheusConnect(url=url, timeout=timeout, retry=Retry(total=0), session=session)


def builtin_queries(query: CanaryQuery) -> dict[str, str]:
    """PromQL of the three built-in readings. The error rate counts 5xx answers and answers of the serving
    image's fallback (a 200 given because the model raised) as errors."""
    selector = _selector(query, query.version, contract.TRACK_CANARY)
    window = format_duration(query.window)
    requests = f"{REQUESTS_METRIC}{{{selector}}}[{window}]"
    errors = f'{REQUESTS_METRIC}{{{selector},{contract.LABEL_CODE}=~"5.."}}[{window}]'
    fallbacks = f"{FALLBACKS_METRIC}{{{selector}}}[{window}]"
    return {
        "request_count": f"sum(increase({requests}))",
        "error_rate": (
            f"((sum(rate({errors})) or vector(0)) + (sum(rate({fallbacks})) or vector(0))) / sum(rate({requests}))"
        ),
        "latency_p99_seconds": (
            f"histogram_quantile(0.99, sum by (le) (rate({DURATION_BUCKETS_METRIC}{{{selector}}}[{window}])))"
        ),
    }


def drift_queries(query: CanaryQuery) -> dict[str, tuple[str, str]]:
    """PromQL of the drift readings, (canary, stable) by name: `classes` by class, `prediction_buckets` by `le`,
    `feature_buckets` by feature and `le`; each the increase over the window, summed over pods."""
    window = format_duration(query.window)
    sides = (
        _selector(query, query.version, contract.TRACK_CANARY),
        _selector(query, query.stable_version or "", contract.TRACK_STABLE),
    )

    def both(metric: str, by: str) -> tuple[str, str]:
        canary, stable = (f"sum by ({by}) (increase({metric}{{{selector}}}[{window}]))" for selector in sides)
        return canary, stable

    return {
        "classes": both(CLASSES_METRIC, contract.LABEL_CLASS),
        "prediction_buckets": both(PREDICTION_BUCKETS_METRIC, "le"),
        "feature_buckets": both(FEATURE_BUCKETS_METRIC, f"{contract.LABEL_FEATURE}, le"),
    }


def comparison_queries(query: CanaryQuery) -> dict[str, tuple[str, str]]:
    """PromQL of compareToStable's readings, (canary, stable) by name: `requests`, `errors` (5xx and fallback
    answers, as the error rate counts them), `latency_buckets` by `le`; each the increase over the window, summed
    over pods."""
    window = format_duration(query.window)
    sides = (
        _selector(query, query.version, contract.TRACK_CANARY),
        _selector(query, query.stable_version or "", contract.TRACK_STABLE),
    )

    def both(render: Callable[[str], str]) -> tuple[str, str]:
        return render(sides[0]), render(sides[1])

    return {
        "requests": both(lambda selector: f"sum(increase({REQUESTS_METRIC}{{{selector}}}[{window}]))"),
        "errors": both(
            lambda selector: (
                f'(sum(increase({REQUESTS_METRIC}{{{selector},{contract.LABEL_CODE}=~"5.."}}[{window}])) or vector(0))'
                f" + (sum(increase({FALLBACKS_METRIC}{{{selector}}}[{window}])) or vector(0))"
            )
        ),
        "latency_buckets": both(
            lambda selector: f"sum by (le) (increase({DURATION_BUCKETS_METRIC}{{{selector}}}[{window}]))"
        ),
    }


def grouped_values(result: Any, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """An instant vector as {values of `labels`: value}, NaN samples left out."""
    if not isinstance(result, list):
        raise QueryError("the result is not a vector")
    values: dict[tuple[str, ...], float] = {}
    for sample in result:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[tuple(sample["metric"].get(label, "") for label in labels)] = value
    return values


def single_value(result: Any) -> float | None:
    """The one number of an instant query's result; None for no data or NaN; QueryError for several series."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        raw = result[1]  # a scalar result: [time, "value"]
    elif isinstance(result, list) and not result:
        return None
    elif isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict):
        raw = result[0]["value"][1]
    elif isinstance(result, list):
        raise QueryError(f"the query returned {len(result)} series; a check needs exactly one value")
    else:
        raise QueryError("the result is neither a vector nor a scalar")
    value = float(raw)
    return None if math.isnan(value) else value


PROMETHEUS_FIX = (
    "set the operator's --prometheus-url (SLUICE_PROMETHEUS_URL; `make run-local` uses the local one) "
    "or spec.analysis.prometheus.url"
)


def cannot_connect(url: str) -> str:
    """The sentence for a Prometheus nothing answers at (refused, no such host): what and the fix."""
    return f"cannot connect to Prometheus at {url}: {PROMETHEUS_FIX}"


def too_slow(url: str, timeout: float) -> str:
    """The sentence for a Prometheus that did not answer in time."""
    return f"Prometheus at {url} timed out (no answer within {timeout:g}s); is it overloaded?"


def reading_failure(url: str, timeout: float, error: Exception) -> str:
    """One short sentence, with the fix, for a reading that failed: what people read in conditions, Events and
    history (never the client library's multi-line text, nor what Prometheus sent back)."""
    match error:
        case requests.exceptions.Timeout():
            return too_slow(url, timeout)
        case requests.exceptions.ConnectionError() if "timed out" in str(error):  # a read timeout, retries off
            return too_slow(url, timeout)
        case requests.exceptions.ConnectionError():
            return cannot_connect(url)
        case PrometheusApiClientException():
            code = re.search(r"HTTP Status Code (\d+)", str(error))
            answer = f"HTTP {code.group(1)}" if code else "an error"
            return f"Prometheus at {url} answered a query with {answer}; check its logs"
        case RefusedAnswerError():
            return f"Prometheus at {url}: {error}"
        case QueryError():
            return str(error)
        case _:
            return f"reading Prometheus at {url} failed ({type(error).__name__})"


def unreachable(url: str, timeout: float) -> str | None:
    """Why the Prometheus at `url` does not answer its readiness endpoint (`reading_failure`'s sentence), or
    None when it does: the operator asks once at start, so a wrong default shows before a rollout depends on it."""
    try:
        with requests.get(f"{url.rstrip('/')}/-/ready", timeout=timeout, stream=True) as answer:
            if answer.status_code != 200:
                return f"Prometheus at {url} is not ready (HTTP {answer.status_code})"
    except requests.RequestException as error:
        return reading_failure(url, timeout, error)
    return None


class PrometheusProvider:
    """Instant queries against one Prometheus, each bounded by `timeout` seconds, without retries."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._client = prometheus_client(url, timeout)

    async def read(self, query: CanaryQuery) -> AnalysisReading:
        try:
            return await asyncio.to_thread(self._read, query)
        except Exception as error:  # a reading never raises: any failure to answer is the reading's error
            return AnalysisReading(error=reading_failure(self.url, self.timeout, error))

    def _query(self, promql: str, at: datetime | None) -> Any:
        params = None if at is None else {"time": f"{at.timestamp():.3f}"}
        return self._client.custom_query(query=promql, params=params)

    def _value(self, promql: str, at: datetime | None) -> float | None:
        try:
            return single_value(self._query(promql, at))
        except QueryError as error:
            raise QueryError(f"{error}: {promql}") from None

    def _grouped(self, promql: str, labels: tuple[str, ...], at: datetime | None) -> dict[tuple[str, ...], float]:
        try:
            return grouped_values(self._query(promql, at), labels)
        except QueryError as error:
            raise QueryError(f"{error}: {promql}") from None

    def _by(self, promqls: tuple[str, str], label: str, at: datetime | None) -> tuple[dict[str, float], ...]:
        return tuple({key[0]: value for key, value in self._grouped(q, (label,), at).items()} for q in promqls)

    def _predictions(self, query: CanaryQuery, queries: dict[str, tuple[str, str]]) -> Counts | None:
        """Class counts when either side has any, else prediction histogram buckets, else None."""
        for name, label, kind in (
            ("classes", "class", CountKind.CLASSES),
            ("prediction_buckets", "le", CountKind.BUCKETS),
        ):
            canary, stable = self._by(queries[name], label, query.at)
            if canary or stable:
                return Counts(kind, canary, stable)
        return None

    def _features(self, query: CanaryQuery, queries: dict[str, tuple[str, str]]) -> dict[str, Counts]:
        canary, stable = (self._grouped(q, ("feature", "le"), query.at) for q in queries["feature_buckets"])
        by_feature: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        for side, values in enumerate((canary, stable)):
            for (feature, le), value in values.items():
                by_feature.setdefault(feature, ({}, {}))[side][le] = value
        return {feature: Counts(CountKind.BUCKETS, *sides) for feature, sides in by_feature.items()}

    def _comparison(self, query: CanaryQuery) -> Comparison:
        queries = comparison_queries(query)
        tracks = []
        for side in (0, 1):
            buckets = self._grouped(queries["latency_buckets"][side], ("le",), query.at)
            tracks.append(
                TrackCounts(
                    requests=self._value(queries["requests"][side], query.at),
                    errors=self._value(queries["errors"][side], query.at),
                    latency_buckets={key[0]: value for key, value in buckets.items()},
                )
            )
        return Comparison(canary=tracks[0], stable=tracks[1])

    def _read(self, query: CanaryQuery) -> AnalysisReading:
        at = query.at
        builtin = {name: self._value(promql, at) for name, promql in builtin_queries(query).items()}
        custom = {name: self._value(render_template(template, query), at) for name, template in query.custom.items()}
        drift = drift_queries(query)
        return AnalysisReading(
            request_count=builtin["request_count"],
            error_rate=builtin["error_rate"],
            latency_p99_seconds=builtin["latency_p99_seconds"],
            custom=custom,
            predictions=self._predictions(query, drift) if query.predictions else None,
            features=self._features(query, drift) if query.features else {},
            comparison=self._comparison(query) if query.compare else None,
        )
