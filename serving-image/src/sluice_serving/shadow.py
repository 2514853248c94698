"""Shadow comparisons: a canary pod compares its own predictions with the stable model's on the same inputs.

In sluice's shadow phase the canary receives copies of live requests (a Gateway API RequestMirror; the
gateway discards the canary's answers) while its traffic weight is 0. Its answers go nowhere, so the comparison
happens here, where both are available: when `SLUICE_REFERENCE_MODEL_URI` is set (the operator sets it, with
`_FORMAT` and `_DIGEST`, to the stable version's model on the canary Deployment) the server loads that model too
and, for every request it answers, predicts with it on a worker thread, off the request's path, and counts:

- `sluice_serving_shadow_comparisons_total{model,version,track,result="agree|disagree"}`: one per predicted row;
  classifiers agree when the labels are equal, regressors when |canary - stable| <= 1e-6 * max(1, |stable|);
- `sluice_serving_shadow_abs_difference` (histogram; regressors only): |canary - stable| per row;
- `sluice_serving_shadow_dropped_total`: requests not compared because the comparison queue was full.

The operator reads agreement = agree / all and the mean absolute difference = _sum / _count over each check
window (docs/ml-analysis.md, Shadow traffic). With SLUICE_WORKERS > 1 every worker compares its own requests and
exports its own counts.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from sluice_serving import contract
from sluice_serving.config import DIGEST_RE, Config, ConfigError, check_format, require_digest_over_http
from sluice_serving.fetch import fetch
from sluice_serving.models import Model, load_model

log = logging.getLogger("sluice_serving.shadow")

URI_ENV = contract.ENV_REFERENCE_MODEL_URI
FORMAT_ENV = contract.ENV_REFERENCE_MODEL_FORMAT
DIGEST_ENV = contract.ENV_REFERENCE_MODEL_DIGEST
QUEUE_SIZE = 256
"""Requests waiting for comparison at most; more are dropped (and counted), never delaying an answer."""
ABS_DIFFERENCE_BUCKETS = (0.0, 1e-6, 1e-4, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0)
_LABELS = contract.BASE_LABELS


@dataclass(frozen=True)
class ReferenceSpec:
    """The reference (stable) model: where it is, its format and pinned digest."""

    uri: str
    format: str
    digest: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReferenceSpec | None:
        """None when SLUICE_REFERENCE_MODEL_URI is unset or empty; ConfigError for a malformed setting."""
        uri = environ.get(URI_ENV, "").strip()
        if not uri:
            return None
        fmt = environ.get(FORMAT_ENV, "").strip().lower()
        check_format(FORMAT_ENV, fmt)
        digest = environ.get(DIGEST_ENV, "").strip().lower()
        if digest and not DIGEST_RE.match(digest):
            raise ConfigError(f"{DIGEST_ENV} must look like sha256:<64 lowercase hex digits>")
        require_digest_over_http(uri, digest, DIGEST_ENV)
        return cls(uri, fmt, digest)


class Shadow:
    """Compares the served model's predictions with a reference model's, on a worker thread."""

    def __init__(self, reference: Model, classifier: bool, registry: CollectorRegistry, base: tuple[str, ...]) -> None:
        self._reference = reference
        self._classifier = classifier
        self._comparisons = Counter(
            contract.SHADOW_COMPARISONS,
            "Rows compared with the reference (stable) model, by result",
            [*_LABELS, contract.LABEL_RESULT],
            registry=registry,
        )
        self._agree = self._comparisons.labels(*base, "agree")
        self._disagree = self._comparisons.labels(*base, "disagree")
        self._abs_difference = Histogram(
            contract.SHADOW_ABS_DIFFERENCE,
            "|prediction - reference prediction| per row (regressors)",
            _LABELS,
            buckets=ABS_DIFFERENCE_BUCKETS,
            registry=registry,
        ).labels(*base)
        self._dropped = Counter(
            "sluice_serving_shadow_dropped", "Requests not compared: the comparison queue was full", _LABELS,
            registry=registry,
        ).labels(*base)  # fmt: skip
        self._queue: queue.Queue[tuple[dict[str, Any], Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._work, name="shadow-compare", daemon=True)
        self._thread.start()

    def submit(self, inputs: dict[str, Any], prediction: Any) -> None:
        """Queue one answered request for comparison; never blocks."""
        try:
            self._queue.put_nowait((inputs, prediction))
        except queue.Full:
            self._dropped.inc()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def compare(self, inputs: dict[str, Any], prediction: Any) -> None:
        """Predict with the reference on `inputs` and count agreement with `prediction` (row by row)."""
        wanted = (self._reference.prediction_output,)
        reference = np.asarray(self._reference.predict(inputs, wanted)[wanted[0]]).reshape(-1)
        ours = np.asarray(prediction).reshape(-1)
        if reference.shape != ours.shape:
            self._disagree.inc(max(len(ours), 1))
            return
        if self._classifier or ours.dtype.kind not in "biuf" or reference.dtype.kind not in "biuf":
            same = np.array([str(a) == str(b) for a, b in zip(ours.tolist(), reference.tolist(), strict=True)])
        else:
            difference = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
            for value in difference.tolist():
                self._abs_difference.observe(value)
            same = difference <= 1e-6 * np.maximum(1.0, np.abs(reference.astype(np.float64)))
        agreed = int(np.count_nonzero(same))
        if agreed:
            self._agree.inc(agreed)
        if len(same) - agreed:
            self._disagree.inc(len(same) - agreed)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.compare(*item)
            except Exception as exc:  # a reference that rejects an input counts as a disagreement
                log.warning("shadow comparison failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                self._disagree.inc()


def from_env(cfg: Config, registry: CollectorRegistry, environ: Mapping[str, str]) -> Shadow | None:
    """Load the reference model named by SLUICE_REFERENCE_MODEL_* and start comparing; None when unset.
    Runs on the model-load thread: the server is not ready until the reference is loaded too."""
    spec = ReferenceSpec.from_env(environ)
    if spec is None:
        return None
    file = fetch(spec.uri, cfg.cache_dir, spec.digest, cfg.download_timeout, cfg.max_model_bytes,
                 cfg.mlflow_tracking_uri, spec.format)  # fmt: skip
    reference = load_model(file, spec.format or file.format, bool(spec.digest), cfg.num_threads)
    log.info("shadow reference loaded", extra={"uri": spec.uri, "platform": reference.platform})
    return Shadow(reference, reference.classifier, registry, (cfg.model_name, cfg.model_version, cfg.track))
