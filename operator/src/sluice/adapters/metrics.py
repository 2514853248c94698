"""Canary metrics from Prometheus: request count, error rate and p99 latency over a window, plus custom PromQL.

Queries select the canary's series by the serving image's labels (`model` = the ModelDeployment's name,
`version`, `track="canary"`) and the `namespace` label the scrape configuration attaches. No data (empty result,
NaN) reads as None; a Prometheus that cannot answer gives `AnalysisReading(error=...)`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from prometheus_api_client import PrometheusConnect
from requests.adapters import Retry

from sluice.api.durations import format_duration
from sluice.core.plan import AnalysisReading

REQUESTS_METRIC = "sluice_serving_requests_total"
DURATION_BUCKETS_METRIC = "sluice_serving_request_duration_seconds_bucket"
CANARY_TRACK = "canary"
_PLACEHOLDER = re.compile(r"\{\{\s*(namespace|name|version|track|interval)\s*\}\}")


@dataclass(frozen=True)
class CanaryQuery:
    """Whose metrics to read, over which window, and the custom PromQL templates by metric name."""

    namespace: str
    name: str
    version: str
    window: timedelta
    custom: Mapping[str, str] = field(default_factory=dict)


class MetricsProvider(Protocol):
    """Reads a canary's metrics; never raises for an unreachable or failing backend."""

    async def read(self, query: CanaryQuery) -> AnalysisReading: ...


class QueryError(Exception):
    """Prometheus answered, but not with one number."""


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render_template(template: str, query: CanaryQuery) -> str:
    """A custom query with its {{namespace}}, {{name}}, {{version}}, {{track}} and {{interval}} filled in."""
    values = {
        "namespace": query.namespace,
        "name": query.name,
        "version": query.version,
        "track": CANARY_TRACK,
        "interval": format_duration(query.window),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def builtin_queries(query: CanaryQuery) -> dict[str, str]:
    """PromQL of the three built-in readings."""
    selector = ",".join(
        f'{label}="{_label_value(value)}"'
        for label, value in (
            ("namespace", query.namespace),
            ("model", query.name),
            ("version", query.version),
            ("track", CANARY_TRACK),
        )
    )
    window = format_duration(query.window)
    requests = f"{REQUESTS_METRIC}{{{selector}}}[{window}]"
    errors = f'{REQUESTS_METRIC}{{{selector},code=~"5.."}}[{window}]'
    return {
        "request_count": f"sum(increase({requests}))",
        "error_rate": f"(sum(rate({errors})) or vector(0)) / sum(rate({requests}))",
        "latency_p99_seconds": (
            f"histogram_quantile(0.99, sum by (le) (rate({DURATION_BUCKETS_METRIC}{{{selector}}}[{window}])))"
        ),
    }


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
        raise QueryError(f"unexpected result {result!r}")
    value = float(raw)
    return None if math.isnan(value) else value


class PrometheusProvider:
    """Instant queries against one Prometheus, each bounded by `timeout` seconds, without retries."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._timeout = timeout
        self._client = PrometheusConnect(url=url, timeout=timeout, retry=Retry(total=0))

    async def read(self, query: CanaryQuery) -> AnalysisReading:
        try:
            return await asyncio.to_thread(self._read, query)
        except Exception as error:  # a reading never raises: any failure to answer is the reading's error
            return AnalysisReading(error=f"{self.url}: {type(error).__name__}: {error}")

    def _value(self, promql: str) -> float | None:
        try:
            return single_value(self._client.custom_query(query=promql))
        except QueryError as error:
            raise QueryError(f"{error}: {promql}") from None

    def _read(self, query: CanaryQuery) -> AnalysisReading:
        builtin = {name: self._value(promql) for name, promql in builtin_queries(query).items()}
        custom = {name: self._value(render_template(template, query)) for name, template in query.custom.items()}
        return AnalysisReading(
            request_count=builtin["request_count"],
            error_rate=builtin["error_rate"],
            latency_p99_seconds=builtin["latency_p99_seconds"],
            custom=custom,
        )
