"""The distributions' buffer: rows and predictions folded in batches (off the per-request path) count exactly what
was observed, across buffer boundaries, batches larger than the buffer and every label type."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from sluice_serving.config import Config
from sluice_serving.metrics import FLUSH_ROWS, Metrics


def samples(metrics: Metrics, name: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == name and (label != "le" or s.labels.get("feature") == "f0")
    }


def loaded(classifier: bool = True) -> Metrics:
    metrics = Metrics(Config.from_env({"MODEL_URI": "m.onnx"}))
    metrics.model_loaded(0.1, ["f0", "f1"], 2, classifier=classifier)
    return metrics


def test_feature_histograms_and_class_counts_are_exact_across_many_folds_and_oversized_batches() -> None:
    metrics = loaded()
    rng = np.random.default_rng(3)
    batches = [1] * (2 * FLUSH_ROWS + 7) + [3, FLUSH_ROWS + 5, 32] * 3
    xs = [rng.normal(size=(rows, 2)).astype(np.float32) for rows in batches]
    ys = [rng.integers(0, 3, size=rows) for rows in batches]
    for x, y in zip(xs, ys, strict=True):
        metrics.distributions.observe(x, y)
    every_x, every_y = np.concatenate(xs), np.concatenate(ys)
    classes = samples(metrics, "sluice_serving_predicted_class_total", "class")
    assert classes == {str(c): float((every_y == c).sum()) for c in range(3)}
    buckets = samples(metrics, "sluice_serving_input_feature_bucket", "le")
    for le, count in buckets.items():
        assert count == float((every_x[:, 0].astype(np.float64) <= float(le)).sum()), le


def test_string_labels_and_regression_values_are_counted_after_a_fold() -> None:
    labels = loaded()
    for _ in range(FLUSH_ROWS + 1):
        labels.distributions.observe(np.zeros((1, 2)), np.array(["cat"], dtype=object))
    assert samples(labels, "sluice_serving_predicted_class_total", "class") == {"cat": FLUSH_ROWS + 1}
    values = loaded(classifier=False)
    for _ in range(FLUSH_ROWS + 1):
        values.distributions.observe(np.zeros((1, 2)), np.array([0.25]))
    counts = samples(values, "sluice_serving_predictions_count", "model")
    assert list(counts.values()) == [FLUSH_ROWS + 1]
