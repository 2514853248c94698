"""Canary metrics from Prometheus: request count, error rate and p99 latency over a window, plus custom PromQL,
plus (when drift bounds are set) the canary's and the stable version's prediction and input-feature counts.

Queries select the canary's series by the serving image's labels (`model` = the ModelDeployment's name,
`version`, `track="canary"`) and the `namespace` label the scrape configuration attaches; the drift queries
read the stable version's series (`track="stable"`) over the same window too. No data (empty result, NaN) reads
as None; a Prometheus that cannot answer gives `AnalysisReading(error=...)`. Queries are instant queries at
`CanaryQuery.at` (what-if replay, `sluice.cli.replay`) or now, each bounded in time and bytes (`PrometheusClient`);
an error names the failure in fixed words (an HTTP status, an exception type), never Prometheus' answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

from sluice import contract
from sluice.adapters.bounded_http import IDENTITY, MAX_RESPONSE_BYTES, BodyTooLargeError, read_capped
from sluice.api.durations import format_duration
from sluice.api.v1alpha1 import AnalysisSpec
from sluice.core.drift import CountKind, Counts
from sluice.core.plan import AnalysisReading

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


class PrometheusClient:
    """Instant queries (GET /api/v1/query) against one Prometheus: each bounded by `timeout` seconds in all and by
    MAX_RESPONSE_BYTES, no redirect followed, no retry (a reading that fails is an Errored check, and the next
    check reads again)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    def session(self) -> httpx.AsyncClient:
        """An HTTP client for the queries of one reading."""
        # the whole query's deadline (`query`) comes first; the client's own timeouts are only a backstop
        return httpx.AsyncClient(timeout=self.timeout + 1, follow_redirects=False, headers=IDENTITY)

    async def query(self, http: httpx.AsyncClient, promql: str, at: datetime | None = None) -> Any:
        """The `data.result` of an instant query."""
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at.timestamp():.3f}"}
        try:
            body = await asyncio.wait_for(self._get(http, params), self.timeout)
        except TimeoutError:
            raise QueryError(f"Prometheus timed out (no answer within {self.timeout:g}s)") from None
        try:
            doc = json.loads(body)
            if doc["status"] != "success":
                raise QueryError("Prometheus answered an error status")
            return doc["data"]["result"]
        except (ValueError, KeyError, TypeError):
            raise QueryError("Prometheus' answer is not a query result") from None

    async def _get(self, http: httpx.AsyncClient, params: dict[str, str]) -> bytes:
        async with http.stream("GET", f"{self.url.rstrip('/')}/api/v1/query", params=params) as response:
            if response.status_code != 200:
                raise QueryError(f"Prometheus answered HTTP {response.status_code}")
            return await read_capped(response, MAX_RESPONSE_BYTES, "Prometheus' answer")


def reading_error(url: str, error: Exception) -> str:
    """Why a reading failed, in words of ours: the message of a QueryError or a size cap, else the error's type
    (an exception's text could quote what Prometheus sent)."""
    if isinstance(error, QueryError | BodyTooLargeError):
        return f"{url}: {error}"
    return f"{url}: {type(error).__name__}"


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


class PrometheusProvider:
    """Instant queries against one Prometheus (`PrometheusClient`)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._client = PrometheusClient(url, timeout)

    async def read(self, query: CanaryQuery) -> AnalysisReading:
        try:
            async with self._client.session() as http:
                return await _Reading(self._client, http, query.at).read(query)
        except Exception as error:  # a reading never raises: any failure to answer is the reading's error
            return AnalysisReading(error=reading_error(self.url, error))


@dataclass
class _Reading:
    """The queries of one reading, on one HTTP client, at one evaluation time."""

    client: PrometheusClient
    http: httpx.AsyncClient
    at: datetime | None

    async def _value(self, promql: str) -> float | None:
        try:
            return single_value(await self.client.query(self.http, promql, self.at))
        except QueryError as error:
            raise QueryError(f"{error}: {promql}") from None

    async def _grouped(self, promql: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        try:
            return grouped_values(await self.client.query(self.http, promql, self.at), labels)
        except QueryError as error:
            raise QueryError(f"{error}: {promql}") from None

    async def _by(self, promqls: tuple[str, str], label: str) -> tuple[dict[str, float], ...]:
        groups = [await self._grouped(q, (label,)) for q in promqls]
        return tuple({key[0]: value for key, value in grouped.items()} for grouped in groups)

    async def _predictions(self, queries: dict[str, tuple[str, str]]) -> Counts | None:
        """Class counts when either side has any, else prediction histogram buckets, else None."""
        for name, label, kind in (
            ("classes", "class", CountKind.CLASSES),
            ("prediction_buckets", "le", CountKind.BUCKETS),
        ):
            canary, stable = await self._by(queries[name], label)
            if canary or stable:
                return Counts(kind, canary, stable)
        return None

    async def _features(self, queries: dict[str, tuple[str, str]]) -> dict[str, Counts]:
        canary, stable = [await self._grouped(q, ("feature", "le")) for q in queries["feature_buckets"]]
        by_feature: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        for side, values in enumerate((canary, stable)):
            for (feature, le), value in values.items():
                by_feature.setdefault(feature, ({}, {}))[side][le] = value
        return {feature: Counts(CountKind.BUCKETS, *sides) for feature, sides in by_feature.items()}

    async def read(self, query: CanaryQuery) -> AnalysisReading:
        builtin = {name: await self._value(promql) for name, promql in builtin_queries(query).items()}
        custom = {name: await self._value(render_template(template, query)) for name, template in query.custom.items()}
        drift = drift_queries(query)
        return AnalysisReading(
            request_count=builtin["request_count"],
            error_rate=builtin["error_rate"],
            latency_p99_seconds=builtin["latency_p99_seconds"],
            custom=custom,
            predictions=await self._predictions(drift) if query.predictions else None,
            features=await self._features(drift) if query.features else {},
        )
