"""Prometheus metrics, cheap on the request path.

Request counters and the latency histogram are prometheus_client children bound once per label set.
Input-feature and prediction distributions are kept in numpy arrays (one vectorised update per
request) and turned into metric families only when /metrics is scraped. Everything runs on the event
loop thread, so no locks are taken on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice_serving.config import Config

PREFIX = "sluice_serving_"
BASE_LABELS = ("model", "version", "track")
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class _ColumnHistograms:
    """One histogram per column of a 2-D input, all with the same buckets, updated in one numpy pass."""

    def __init__(self, bounds: Sequence[float], series: int) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.series = series
        width = len(bounds) + 1  # the last bucket is +Inf
        self.counts = np.zeros(series * width, dtype=np.int64)
        self.sums = np.zeros(series, dtype=np.float64)
        self._offsets = np.arange(series, dtype=np.intp) * width

    def observe(self, columns: npt.NDArray[Any]) -> None:
        """Observe every row of `columns` (shape (rows, >= series); extra columns are ignored)."""
        x = columns[:, : self.series]
        idx = np.searchsorted(self.bounds, x) + self._offsets[: x.shape[1]]
        self.counts += np.bincount(idx.ravel(), minlength=self.counts.size)
        self.sums[: x.shape[1]] += x.sum(axis=0)

    def family(self, name: str, doc: str, labels: Sequence[str], values: Sequence[Sequence[str]]) -> Metric:
        fam = HistogramMetricFamily(name, doc, labels=labels)
        les = [_le(b) for b in self.bounds] + ["+Inf"]
        counts = self.counts.reshape(self.series, -1).cumsum(axis=1)
        for i, label_values in enumerate(values):
            if counts[i, -1]:
                buckets = list(zip(les, counts[i].tolist(), strict=True))
                fam.add_metric(list(label_values), buckets, float(self.sums[i]))
        return fam


def _le(bound: float) -> str:
    return repr(float(bound))


class _DistributionCollector(Collector):
    """Input features, predicted classes (classifiers) and predicted values (regressors)."""

    def __init__(self, cfg: Config, base: tuple[str, str, str]) -> None:
        self._cfg = cfg
        self._base = base
        self._features: _ColumnHistograms | None = None
        self._feature_names: tuple[str, ...] = ()
        self._values = _ColumnHistograms(cfg.prediction_buckets, 1)
        self._classes: dict[Any, int] = {}
        self._class_names: dict[Any, str] = {}
        self._classifier: bool | None = None

    def configure(self, feature_names: Sequence[str], width: int, classifier: bool) -> None:
        """Size the feature histograms for the model (width -1: unknown, monitor up to the cap)."""
        cap = self._cfg.monitored_features
        count = min(cap, width) if width >= 0 else cap
        names = list(feature_names[:count]) + [str(i) for i in range(len(feature_names), count)]
        self._feature_names = tuple(names)
        self._features = _ColumnHistograms(self._cfg.feature_buckets, count) if count else None
        self._classifier = classifier

    def observe_features(self, x: npt.NDArray[Any]) -> None:
        if self._features is not None and x.ndim == 2 and x.dtype.kind in "biuf":
            self._features.observe(x)

    def observe_predictions(self, y: npt.NDArray[Any]) -> None:
        if self._classifier:
            if y.size == 1:
                self._count_class(y.item(), 1)
            else:
                values, counts = np.unique(y, return_counts=True)
                for value, count in zip(values.tolist(), counts.tolist(), strict=True):
                    self._count_class(value, count)
        elif self._classifier is not None and y.dtype.kind in "biuf":
            self._values.observe(y.reshape(-1, 1))

    def _count_class(self, value: Any, count: int) -> None:
        if value not in self._classes:
            if len(self._classes) >= self._cfg.max_classes:
                value = "other"
            self._class_names.setdefault(
                value, value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            )
            self._classes.setdefault(value, 0)
        self._classes[value] += count

    def collect(self) -> Iterable[Metric]:
        base = list(BASE_LABELS)
        if self._features is not None:
            yield self._features.family(
                PREFIX + "input_feature",
                "Distribution of each monitored input feature (column of the first input)",
                [*base, "feature"],
                [(*self._base, name) for name in self._feature_names],
            )
        if self._classifier is False:
            yield self._values.family(
                PREFIX + "predictions", "Distribution of predicted values (regressors)", base, [self._base]
            )
        if self._classifier:
            fam = CounterMetricFamily(
                PREFIX + "predicted_class", "Predictions by predicted class (classifiers)", labels=[*base, "class"]
            )
            for value, count in self._classes.items():
                fam.add_metric([*self._base, self._class_names[value]], count)
            yield fam


class Metrics:
    """All of the server's metrics, in a registry of its own (plus process and platform metrics)."""

    def __init__(self, cfg: Config) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        base = (cfg.model_name, cfg.model_version, cfg.track)
        self._base = base
        self._requests = Counter(
            PREFIX + "requests",
            "Inference requests by endpoint and HTTP status code",
            [*BASE_LABELS, "endpoint", "code"],
            registry=self.registry,
        )
        self._duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Inference request latency, from the full request read to the response written",
            [*BASE_LABELS, "endpoint"],
            buckets=cfg.latency_buckets,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            PREFIX + "requests_in_flight",
            "Inference requests received and not yet answered",
            BASE_LABELS,
            registry=self.registry,
        ).labels(*base)
        self._load = Gauge(
            PREFIX + "model_load_duration_seconds",
            "Seconds from start to model ready: fetch, digest check, load and warm-up",
            BASE_LABELS,
            registry=self.registry,
        ).labels(*base)
        self.distributions = _DistributionCollector(cfg, base)
        self.registry.register(self.distributions)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._counter_children: dict[tuple[str, int], Any] = {}
        self._duration_children: dict[str, Any] = {}
        self.record_label_set("infer", 200)  # so the series exist (at zero) before the first request

    def record_label_set(self, endpoint: str, code: int) -> tuple[Any, Any]:
        """The bound counter and histogram children for one endpoint and status code."""
        counter = self._counter_children.get((endpoint, code))
        if counter is None:
            counter = self._requests.labels(*self._base, endpoint, str(code))
            self._counter_children[(endpoint, code)] = counter
        duration = self._duration_children.get(endpoint)
        if duration is None:
            duration = self._duration.labels(*self._base, endpoint)
            self._duration_children[endpoint] = duration
        return counter, duration

    def model_loaded(self, seconds: float, feature_names: Sequence[str], width: int, classifier: bool) -> None:
        self._load.set(seconds)
        self.distributions.configure(feature_names, width, classifier)

    def record(self, endpoint: str, code: int, seconds: float) -> None:
        """Count one answered inference request and observe its latency."""
        counter, duration = self.record_label_set(endpoint, code)
        counter.inc()
        duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
