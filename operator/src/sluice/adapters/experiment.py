"""An experiment's readings from Prometheus (spec.experiment): each arm's answered requests and, per metric, its
hits since the experiment started.

The stable track's server assigns the arms and counts every answered request of the experiment in
`sluice_serving_experiment_exposures_total{arm="A|B|unassigned",group,served,code}` (serving-image experiment.py);
an arm's samples are the sum of each stable pod's last count within the time since the experiment started: the
stable pods start with the experiment (its variables are in their template), so a pod's count is all of its
exposures, and `increase()` would miss what a pod answered before Prometheus first scraped it (a CI run's whole
load of 1,000 requests came before the first scrape: increase() read 0). The metrics' queries are the
spec's templates with {{namespace}}, {{name}}, {{arm}}, {{version}}, {{track}} and {{window}} filled in, once per
arm. A failure names itself in fixed words, never Prometheus' answer (`reading_failure`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sluice import contract
from sluice.adapters.metrics import prometheus_client, reading_failure, single_value
from sluice.api.durations import format_duration
from sluice.core.plan import ExperimentReading

EXPOSURES_METRIC = f"{contract.EXPOSURES}_total"
_PLACEHOLDER = re.compile(r"\{\{\s*(namespace|name|arm|version|track|window)\s*\}\}")


@dataclass(frozen=True)
class ExperimentQuery:
    """Whose experiment to read, since when, and the metrics' templates by name."""

    namespace: str
    name: str
    stable_version: str
    candidate_version: str
    window: timedelta
    metrics: Mapping[str, str] = field(default_factory=dict)

    def arms(self) -> tuple[dict[str, str], dict[str, str]]:
        """The placeholders' values for arm A, then arm B."""
        common = {"namespace": self.namespace, "name": self.name, "window": _window(self.window)}
        a = {**common, "arm": contract.ARM_A, "version": self.stable_version, "track": contract.TRACK_STABLE}
        b = {**common, "arm": contract.ARM_B, "version": self.candidate_version, "track": contract.TRACK_CANARY}
        return a, b


def _window(window: timedelta) -> str:
    return format_duration(timedelta(seconds=max(1, round(window.total_seconds()))))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def samples_query(values: Mapping[str, str]) -> str:
    """PromQL of one arm's answered requests since the experiment started."""
    selector = ",".join(
        f'{label}="{_label_value(values[key])}"'
        for label, key in (
            (contract.LABEL_NAMESPACE, "namespace"),
            (contract.LABEL_MODEL, "name"),
            (contract.LABEL_ARM, "arm"),
        )
    )
    return f"sum(last_over_time({EXPOSURES_METRIC}{{{selector}}}[{values['window']}]))"


class ExperimentReader(Protocol):
    """Reads an experiment's evidence; never raises for an unreachable or failing backend."""

    async def read(self, query: ExperimentQuery) -> ExperimentReading: ...


class ExperimentMetrics:
    """Reads experiments from one Prometheus; never raises (a failure is the reading's error)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._client = prometheus_client(url, timeout)

    async def read(self, query: ExperimentQuery) -> ExperimentReading:
        try:
            return await asyncio.to_thread(self._read, query)
        except Exception as error:  # a reading never raises: any failure to answer is the reading's error
            return ExperimentReading(error=reading_failure(self.url, self.timeout, error))

    def _value(self, promql: str) -> float | None:
        return single_value(self._client.custom_query(query=promql))

    def _read(self, query: ExperimentQuery) -> ExperimentReading:
        a, b = query.arms()
        hits = {
            name: (self._value(render(template, a)), self._value(render(template, b)))
            for name, template in query.metrics.items()
        }
        return ExperimentReading(
            samples_a=self._value(samples_query(a)), samples_b=self._value(samples_query(b)), hits=hits
        )
