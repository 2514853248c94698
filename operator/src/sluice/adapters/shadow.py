"""The shadow phase's readings from Prometheus: how often the canary agreed with stable on mirrored requests.

In the shadow phase the canary's pods load the stable model next to their own (the operator sets
SLUICE_REFERENCE_MODEL_URI/_FORMAT/_DIGEST on the canary Deployment) and compare both predictions on every request
they serve, which at weight 0 are only the mirrored ones. They export
`sluice_serving_shadow_comparisons_total{result="agree|disagree"}` (one per predicted row) and, for regressors,
the histogram `sluice_serving_shadow_abs_difference`. Queries select the canary's series like the built-in ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sluice import contract
from sluice.adapters.metrics import prometheus_client, reading_failure, series_selector, single_value
from sluice.api.durations import format_duration
from sluice.core.plan import ShadowReading

COMPARISONS_METRIC = f"{contract.SHADOW_COMPARISONS}_total"
ABS_DIFFERENCE_METRIC = contract.SHADOW_ABS_DIFFERENCE


@dataclass(frozen=True)
class ShadowQuery:
    """Whose comparisons to read, over which window."""

    namespace: str
    name: str
    version: str
    window: timedelta


class ShadowReader(Protocol):
    """Reads a canary's shadow comparisons; never raises for an unreachable or failing backend."""

    async def read(self, query: ShadowQuery) -> ShadowReading: ...


def shadow_queries(query: ShadowQuery) -> dict[str, str]:
    """PromQL of the three shadow readings over the query's window."""
    selector = series_selector(query.namespace, query.name, query.version, contract.TRACK_CANARY)
    window = format_duration(query.window)
    total = f"sum(increase({COMPARISONS_METRIC}{{{selector}}}[{window}]))"
    agreeing = f'{selector},{contract.LABEL_RESULT}="agree"'
    agreed = f"(sum(increase({COMPARISONS_METRIC}{{{agreeing}}}[{window}])) or vector(0))"
    return {
        "comparisons": total,
        "agreement": f"{agreed} / {total}",
        "mean_abs_difference": (
            f"sum(increase({ABS_DIFFERENCE_METRIC}_sum{{{selector}}}[{window}])) / "
            f"sum(increase({ABS_DIFFERENCE_METRIC}_count{{{selector}}}[{window}]))"
        ),
    }


class ShadowMetrics:
    """Reads the shadow comparisons from one Prometheus; never raises (a failure is the reading's error)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._client = prometheus_client(url, timeout)

    async def read(self, query: ShadowQuery) -> ShadowReading:
        try:
            return await asyncio.to_thread(self._read, query)
        except Exception as error:  # a reading never raises: any failure to answer is the reading's error
            return ShadowReading(error=reading_failure(self.url, self.timeout, error))

    def _read(self, query: ShadowQuery) -> ShadowReading:
        values = {name: single_value(self._client.custom_query(query=q)) for name, q in shadow_queries(query).items()}
        return ShadowReading(
            comparisons=values["comparisons"],
            agreement=values["agreement"],
            mean_abs_difference=values["mean_abs_difference"],
        )
