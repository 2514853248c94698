"""Prometheus metrics, cheap on the request path.

Everything that changes per request is kept in plain Python and numpy structures owned by the event
loop thread (no locks) and turned into metric families only when /metrics is scraped: request counts
and latencies are a dict and a bisect per request; input-feature rows are copied into a preallocated
buffer and predictions appended to a list, and both are folded into their histograms in one vectorised
pass every FLUSH_ROWS rows (and at every scrape). The fold runs on the event loop, so it is kept short
(about a tenth of a millisecond; docs/benchmarks.md, "The tail"): no per-row concatenation, no
Python-level counting of numeric labels.

With SLUICE_WORKERS > 1 every worker process publishes a snapshot of its counts to a private directory
(`Peers`) a few times a second, and the worker that answers a scrape adds the other workers' latest
snapshots to its own live counts, so /metrics reports the pod as a whole.
"""

from __future__ import annotations

import bisect
import os
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from sluice_serving import contract
from sluice_serving.config import Config

PREFIX = contract.METRIC_PREFIX
BASE_LABELS = contract.BASE_LABELS
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
FLUSH_ROWS = 1024
"""Rows buffered before they are folded into the distributions' histograms."""
REST = "rest"
GRPC = "grpc"
"""The values of the `protocol` label."""


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

    def __init__(self, base: tuple[str, str, str], bounds: Sequence[float], fallback: str | None) -> None:
        self._base = base
        self._bounds = list(bounds)
        self._codes: dict[tuple[str, str, int], int] = {("infer", REST, 200): 0}
        self._buckets: dict[tuple[str, str], list[int]] = {("infer", REST): [0] * (len(bounds) + 1)}
        self._sums: dict[tuple[str, str], float] = {("infer", REST): 0.0}
        self.fallbacks: dict[tuple[str, str], int] = {("infer", fallback): 0} if fallback else {}
        self.exposures: dict[tuple[str, str, str, int], int] = {}
        """(arm, group, served version, code) -> answered requests of an experiment (experiment.py)."""
        self.in_flight = 0
        self.load_seconds: float | None = None

    def state(self) -> dict[str, Any]:
        return {
            "codes": dict(self._codes),
            "buckets": {k: list(v) for k, v in self._buckets.items()},
            "sums": dict(self._sums),
            "fallbacks": dict(self.fallbacks),
            "exposures": dict(self.exposures),
            "in_flight": self.in_flight,
            "load_seconds": self.load_seconds,
        }

    def absorb(self, state: dict[str, Any]) -> None:
        """Add another worker's counts (from `state()`) to these."""
        for key, count in state["codes"].items():
            self._codes[key] = self._codes.get(key, 0) + count
        for key, buckets in state["buckets"].items():
            mine = self._buckets.setdefault(key, [0] * (len(self._bounds) + 1))
            self._buckets[key] = [a + b for a, b in zip(mine, buckets, strict=True)]
            self._sums[key] = self._sums.get(key, 0.0) + state["sums"][key]
        for key, count in state["fallbacks"].items():
            self.fallbacks[key] = self.fallbacks.get(key, 0) + count
        for key, count in state["exposures"].items():
            self.exposures[key] = self.exposures.get(key, 0) + count
        self.in_flight += state["in_flight"]
        if state["load_seconds"] is not None:
            self.load_seconds = max(self.load_seconds or 0.0, state["load_seconds"])

    def record(self, endpoint: str, code: int, seconds: float, protocol: str = REST) -> None:
        """One answered request; `code` is the HTTP status (for gRPC, the one its status code stands for)."""
        key = (endpoint, protocol, code)
        codes = self._codes
        codes[key] = codes.get(key, 0) + 1
        series = (endpoint, protocol)
        buckets = self._buckets.get(series)
        if buckets is None:
            buckets = self._buckets[series] = [0] * (len(self._bounds) + 1)
            self._sums[series] = 0.0
        buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sums[series] += seconds

    def collect(self) -> Iterable[Metric]:
        base = list(self._base)
        requests = CounterMetricFamily(
            contract.REQUESTS,
            "Inference requests by endpoint (infer, predict), HTTP status code and protocol (rest, grpc)",
            labels=[*BASE_LABELS, contract.LABEL_ENDPOINT, contract.LABEL_CODE, contract.LABEL_PROTOCOL],
        )
        for (endpoint, protocol, code), count in sorted(self._codes.items()):
            requests.add_metric([*base, endpoint, str(code), protocol], count)
        yield requests
        duration = HistogramMetricFamily(
            contract.REQUEST_DURATION_SECONDS,
            "Inference request latency, from the request fully read to the response written",
            labels=[*BASE_LABELS, contract.LABEL_ENDPOINT, contract.LABEL_PROTOCOL],
        )
        les = [_le(b) for b in self._bounds] + ["+Inf"]
        for (endpoint, protocol), buckets in sorted(self._buckets.items()):
            cumulative = np.cumsum(buckets).tolist()
            sums = self._sums[endpoint, protocol]
            duration.add_metric([*base, endpoint, protocol], list(zip(les, cumulative, strict=True)), sums)
        yield duration
        if self.fallbacks:
            fallbacks = CounterMetricFamily(
                contract.FALLBACK_RESPONSES,
                "Inference requests answered by the fallback because the model raised (answered 200)",
                labels=[*BASE_LABELS, contract.LABEL_ENDPOINT, "fallback"],
            )
            for (endpoint, kind), count in sorted(self.fallbacks.items()):
                fallbacks.add_metric([*base, endpoint, kind], count)
            yield fallbacks
        if self.exposures:
            yield self._exposures(base)
        in_flight = GaugeMetricFamily(
            PREFIX + "requests_in_flight", "Inference requests received and not yet answered", labels=BASE_LABELS
        )
        in_flight.add_metric(base, self.in_flight)
        yield in_flight
        if self.load_seconds is not None:
            load = GaugeMetricFamily(
                PREFIX + "model_load_duration_seconds",
                "Seconds from start to model ready: fetch, digest check, load and warm-up",
                labels=BASE_LABELS,
            )
            load.add_metric(base, self.load_seconds)
            yield load

    def _exposures(self, base: list[str]) -> Metric:
        exposures = CounterMetricFamily(
            contract.EXPOSURES,
            "Answered inference requests of an experiment by arm (A, B, unassigned), bucket group (the entity key's "
            "bucket divided by 10), the version that answered, and HTTP status code",
            labels=[*BASE_LABELS, contract.LABEL_ARM, contract.LABEL_GROUP, contract.LABEL_SERVED, contract.LABEL_CODE],
        )
        for (arm, group, served, code), count in sorted(self.exposures.items()):
            exposures.add_metric([*base, arm, group, served, str(code)], count)
        return exposures


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
        self._rows: npt.NDArray[np.float64] | None = None  # the monitored columns of buffered input rows
        self._buffered = 0  # rows in self._rows
        self._pending_y: list[npt.NDArray[Any]] = []
        self._pending_rows = 0

    def configure(self, feature_names: Sequence[str], width: int, classifier: bool) -> None:
        """Size the feature histograms for the model (width -1: unknown, monitor up to the cap)."""
        cap = self._cfg.monitored_features
        count = min(cap, width) if width >= 0 else cap
        names = list(feature_names[:count]) + [str(i) for i in range(len(feature_names), count)]
        self._feature_names = tuple(names)
        self._features = _ColumnHistograms(self._cfg.feature_buckets, count) if count else None
        self._rows = np.empty((FLUSH_ROWS, count), dtype=np.float64) if count else None
        self._buffered = 0
        self._classifier = classifier

    def observe(self, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> None:
        """Buffer one request's first input and predictions; fold them in when enough rows are pending."""
        features = self._features
        shape = x.shape
        if features is not None and len(shape) == 2 and x.dtype.kind in "biuf":
            rows, width = shape
            series = features.series
            if width < series or rows > FLUSH_ROWS:
                features.observe(x[:, :series])
            else:
                if self._buffered + rows > FLUSH_ROWS:
                    self.flush()
                assert self._rows is not None
                start = self._buffered
                self._rows[start : start + rows] = x if width == series else x[:, :series]
                self._buffered = start + rows
        if self._classifier is not None:
            self._pending_y.append(y)
        self._pending_rows += shape[0] if shape else 1
        if self._pending_rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._buffered and self._features is not None and self._rows is not None:
            self._features.observe(self._rows[: self._buffered])
        if self._pending_y:
            y = np.concatenate(self._pending_y, axis=None)
            if self._classifier:
                if y.dtype.kind in "biuf":
                    values, counts = np.unique(y, return_counts=True)
                    pairs: Iterable[tuple[Any, int]] = zip(values.tolist(), counts.tolist(), strict=True)
                else:
                    pairs = Counter(y.tolist()).items()
                for value, count in pairs:
                    self._count_class(value, count)
            elif y.dtype.kind in "biuf":
                self._values.observe(y.reshape(-1, 1))
        self._buffered = 0
        self._pending_y.clear()
        self._pending_rows = 0

    def state(self) -> dict[str, Any]:
        self.flush()
        features = self._features
        return {
            "features": (features.counts.copy(), features.sums.copy()) if features is not None else None,
            "values": (self._values.counts.copy(), self._values.sums.copy()),
            "classes": dict(self._classes),
        }

    def absorb(self, state: dict[str, Any]) -> None:
        """Add another worker's counts (from `state()`, same configuration) to these."""
        if state["features"] is not None and self._features is not None:
            self._features.counts += state["features"][0]
            self._features.sums += state["features"][1]
        self._values.counts += state["values"][0]
        self._values.sums += state["values"][1]
        for value, count in state["classes"].items():
            self._count_class(value, count)

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
                contract.INPUT_FEATURE,
                "Distribution of each monitored input feature (column of the first input)",
                [*base, contract.LABEL_FEATURE],
                [(*self._base, name) for name in self._feature_names],
            )
        if self._classifier is False:
            yield self._values.family(
                contract.PREDICTIONS, "Distribution of predicted values (regressors)", base, [self._base]
            )
        if self._classifier:
            fam = CounterMetricFamily(
                contract.PREDICTED_CLASS,
                "Predictions by predicted class (classifiers)",
                labels=[*base, contract.LABEL_CLASS],
            )
            for value, count in self._classes.items():
                fam.add_metric([*self._base, self._class_names[value]], count)
            yield fam


class Metrics:
    """All of the server's metrics, in a registry of its own (plus process and platform metrics)."""

    def __init__(self, cfg: Config, peers: Peers | None = None) -> None:
        self.cfg = cfg
        self.peers = peers
        self.registry = CollectorRegistry(auto_describe=True)
        base = (cfg.model_name, cfg.model_version, cfg.track)
        self._requests = _Requests(base, cfg.latency_buckets, cfg.fallback.kind if cfg.fallback else None)
        self.registry.register(self._requests)
        self.record = self._requests.record
        self.distributions = _Distributions(cfg, base)
        self.registry.register(self.distributions)
        self._model: tuple[Sequence[str], int, bool] | None = None
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def in_flight_inc(self) -> None:
        self._requests.in_flight += 1

    def in_flight_dec(self) -> None:
        self._requests.in_flight -= 1

    def fallback(self, endpoint: str, kind: str) -> None:
        """Count one answer of the fallback."""
        key = (endpoint, kind)
        self._requests.fallbacks[key] = self._requests.fallbacks.get(key, 0) + 1

    def expect_exposures(self, groups: Iterable[tuple[str, str]], version: str, candidate: str) -> None:
        """Zero the exposure series an experiment will count answers in (a counter that appears at 0 loses no
        increase), and the unassigned requests' (answered by this version)."""
        for arm, group in [*groups, (contract.ARM_UNASSIGNED, "none")]:
            served = candidate if arm == contract.ARM_B else version
            self._requests.exposures.setdefault((arm, group, served, 200), 0)

    def expose(self, arm: str, group: str, served: str, code: int) -> None:
        """Count one answered request of an experiment."""
        key = (arm, group, served, code)
        self._requests.exposures[key] = self._requests.exposures.get(key, 0) + 1

    def model_loaded(self, seconds: float, feature_names: Sequence[str], width: int, classifier: bool) -> None:
        self._requests.load_seconds = seconds
        self._model = (feature_names, width, classifier)
        self.distributions.configure(feature_names, width, classifier)

    def state(self) -> dict[str, Any]:
        """This process's counts, for the other workers to add up."""
        return {
            "requests": self._requests.state(),
            "distributions": self.distributions.state() if self._model is not None else None,
        }

    def publish(self) -> None:
        """Write this worker's snapshot for the others (SLUICE_WORKERS > 1)."""
        if self.peers is not None:
            self.peers.publish(self.state())

    def render(self) -> bytes:
        if self.peers is None:
            return generate_latest(self.registry)
        total = Metrics(self.cfg)
        if self._model is not None:
            total.model_loaded(0.0, *self._model)
            total._requests.load_seconds = None
        for state in [self.state(), *self.peers.others()]:
            total._requests.absorb(state["requests"])
            if state["distributions"] is not None and self._model is not None:
                total.distributions.absorb(state["distributions"])
        # Series others registered here (the shadow comparison) are this worker's own.
        summed = {family.name for family in total.registry.collect()}
        own = [family for family in self.registry.collect() if family.name not in summed]
        total.registry.register(_Fixed(own))
        return generate_latest(total.registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class Peers:
    """The snapshot files of the worker processes of one server, in a directory only they use."""

    def __init__(self, directory: Path, index: int, workers: int) -> None:
        self.directory = directory
        self.index = index
        self.workers = workers
        self._path = directory / f"worker-{index}.metrics"
        self._tmp = directory / f".worker-{index}.metrics.tmp"
        self._all_ready = False

    def mark_ready(self) -> None:
        """This worker has loaded its model."""
        (self.directory / f"ready-{self.index}").touch()

    def all_ready(self) -> bool:
        """Every worker has loaded its model: the pod is ready only then, whichever worker a probe reaches
        (a worker that fails to load stops them all, so readiness never has to go back)."""
        if not self._all_ready:
            self._all_ready = all((self.directory / f"ready-{i}").exists() for i in range(self.workers))
        return self._all_ready

    def publish(self, state: dict[str, Any]) -> None:
        self._tmp.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(self._tmp, self._path)

    def others(self) -> list[dict[str, Any]]:
        """The latest snapshot of every other worker (a worker that has not published yet counts 0)."""
        states = []
        for path in sorted(self.directory.glob("worker-*.metrics")):
            if path != self._path:
                try:
                    states.append(pickle.loads(path.read_bytes()))
                except (OSError, EOFError, pickle.UnpicklingError):
                    continue
        return states
