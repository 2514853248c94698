"""Prometheus metrics, cheap on the request path.

Everything that changes per request is kept in plain Python and numpy structures owned by the event
loop thread (no locks) and turned into metric families only when /metrics is scraped: request counts
and latencies are a dict and a bisect per request; input-feature and prediction distributions are
buffered and folded into their histograms in one vectorised pass every few thousand rows (and at
every scrape).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Gauge, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from sluice_serving.config import Config

PREFIX = "sluice_serving_"
BASE_LABELS = ("model", "version", "track")
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
FLUSH_ROWS = 4096


def _le(bound: float) -> str:
    return repr(float(bound))


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
        """Observe every row of `columns` (shape (rows, <= series))."""
        idx = np.searchsorted(self.bounds, columns) + self._offsets[: columns.shape[1]]
        self.counts += np.bincount(idx.ravel(), minlength=self.counts.size)
        self.sums[: columns.shape[1]] += columns.sum(axis=0)

    def family(self, name: str, doc: str, labels: Sequence[str], values: Sequence[Sequence[str]]) -> Metric:
        fam = HistogramMetricFamily(name, doc, labels=labels)
        les = [_le(b) for b in self.bounds] + ["+Inf"]
        counts = self.counts.reshape(self.series, -1).cumsum(axis=1)
        # A _sum of possibly negative values is not a counter (rate() would see resets), so it is only
        # exposed when every bucket bound is non-negative; _count always is.
        with_sum = bool(self.bounds[0] >= 0)
        for i, label_values in enumerate(values):
            if counts[i, -1]:
                fam.add_metric(list(label_values), list(zip(les, counts[i].tolist(), strict=True)), None)
                sample_labels = dict(zip(labels, label_values, strict=True))
                fam.samples.append(Sample(name + "_count", sample_labels, float(counts[i, -1])))
                if with_sum:
                    fam.samples.append(Sample(name + "_sum", sample_labels, float(self.sums[i])))
        return fam


class _Requests(Collector):
    """sluice_serving_requests_total and sluice_serving_request_duration_seconds."""

    def __init__(self, base: tuple[str, str, str], bounds: Sequence[float]) -> None:
        self._base = base
        self._bounds = list(bounds)
        self._codes: dict[tuple[str, int], int] = {("infer", 200): 0}
        self._buckets: dict[str, list[int]] = {"infer": [0] * (len(bounds) + 1)}
        self._sums: dict[str, float] = {"infer": 0.0}

    def record(self, endpoint: str, code: int, seconds: float) -> None:
        key = (endpoint, code)
        codes = self._codes
        codes[key] = codes.get(key, 0) + 1
        buckets = self._buckets.get(endpoint)
        if buckets is None:
            buckets = self._buckets[endpoint] = [0] * (len(self._bounds) + 1)
            self._sums[endpoint] = 0.0
        buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sums[endpoint] += seconds

    def collect(self) -> Iterable[Metric]:
        base = list(self._base)
        requests = CounterMetricFamily(
            PREFIX + "requests",
            "Inference requests by endpoint (infer, predict) and HTTP status code",
            labels=[*BASE_LABELS, "endpoint", "code"],
        )
        for (endpoint, code), count in sorted(self._codes.items()):
            requests.add_metric([*base, endpoint, str(code)], count)
        yield requests
        duration = HistogramMetricFamily(
            PREFIX + "request_duration_seconds",
            "Inference request latency, from the request fully read to the response written",
            labels=[*BASE_LABELS, "endpoint"],
        )
        les = [_le(b) for b in self._bounds] + ["+Inf"]
        for endpoint, buckets in sorted(self._buckets.items()):
            cumulative = np.cumsum(buckets).tolist()
            duration.add_metric([*base, endpoint], list(zip(les, cumulative, strict=True)), self._sums[endpoint])
        yield duration


class _Distributions(Collector):
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
        self._pending_x: list[npt.NDArray[Any]] = []
        self._pending_y: list[npt.NDArray[Any]] = []
        self._pending_rows = 0

    def configure(self, feature_names: Sequence[str], width: int, classifier: bool) -> None:
        """Size the feature histograms for the model (width -1: unknown, monitor up to the cap)."""
        cap = self._cfg.monitored_features
        count = min(cap, width) if width >= 0 else cap
        names = list(feature_names[:count]) + [str(i) for i in range(len(feature_names), count)]
        self._feature_names = tuple(names)
        self._features = _ColumnHistograms(self._cfg.feature_buckets, count) if count else None
        self._classifier = classifier

    def observe(self, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> None:
        """Buffer one request's first input and predictions; fold them in when enough rows are pending."""
        features = self._features
        if features is not None and x.ndim == 2 and x.dtype.kind in "biuf":
            if x.shape[1] >= features.series:
                self._pending_x.append(x[:, : features.series])
            else:
                features.observe(x)
        if self._classifier is not None:
            self._pending_y.append(y)
        self._pending_rows += x.shape[0] if x.ndim else 1
        if self._pending_rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending_x and self._features is not None:
            self._features.observe(np.concatenate(self._pending_x))
        if self._pending_y:
            y = np.concatenate([p.reshape(-1) for p in self._pending_y])
            if self._classifier:
                for value, count in Counter(y.tolist()).items():
                    self._count_class(value, count)
            elif y.dtype.kind in "biuf":
                self._values.observe(y.reshape(-1, 1))
        self._pending_x.clear()
        self._pending_y.clear()
        self._pending_rows = 0

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
        self.flush()
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
        self._requests = _Requests(base, cfg.latency_buckets)
        self.registry.register(self._requests)
        self.record = self._requests.record
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
        self.distributions = _Distributions(cfg, base)
        self.registry.register(self.distributions)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def model_loaded(self, seconds: float, feature_names: Sequence[str], width: int, classifier: bool) -> None:
        self._load.set(seconds)
        self.distributions.configure(feature_names, width, classifier)

    def render(self) -> bytes:
        return generate_latest(self.registry)
