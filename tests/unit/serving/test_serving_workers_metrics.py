"""SLUICE_WORKERS metrics: each worker publishes a snapshot; the one scraped reports the sum of all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from sluice_serving.config import Config
from sluice_serving.metrics import Metrics, Peers


def values(metrics: Metrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    text = metrics.render().decode()
    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def worker(cfg: Config, directory: Path, index: int) -> Metrics:
    metrics = Metrics(cfg, Peers(directory, index, 2))
    metrics.model_loaded(0.5 + index, ["a", "b"], 2, classifier=True)
    return metrics


def test_the_scraped_worker_reports_every_workers_counts(tmp_path: Path) -> None:
    cfg = Config.from_env({"MODEL_URI": "m.onnx", "SLUICE_FALLBACK": "constant:1"})
    one, two = worker(cfg, tmp_path, 0), worker(cfg, tmp_path, 1)
    one.record("infer", 200, 0.001)
    one.distributions.observe(np.array([[0.1, 5.0]]), np.array([1]))
    two.record("infer", 200, 0.002)
    two.record("infer", 500, 0.002)
    two.fallback("infer", "constant")
    two.in_flight_inc()
    two.distributions.observe(np.array([[0.2, -5.0], [0.3, 0.0]]), np.array([0, 1]))
    assert values(one, "sluice_serving_requests_total")  # before `two` publishes, `one` sees only itself
    assert sum(values(one, "sluice_serving_requests_total").values()) == 1
    two.publish()
    for scraped in (one, two):
        one.publish()
        requests = {dict(k)["code"]: v for k, v in values(scraped, "sluice_serving_requests_total").items()}
        assert requests == {"200": 2, "500": 1}
        assert sum(values(scraped, "sluice_serving_fallback_responses_total").values()) == 1
        assert sum(values(scraped, "sluice_serving_requests_in_flight").values()) == 1
        assert sum(values(scraped, "sluice_serving_model_load_duration_seconds").values()) == 1.5  # the slowest
        classes = {dict(k)["class"]: v for k, v in values(scraped, "sluice_serving_predicted_class_total").items()}
        assert classes == {"0": 1, "1": 2}
        features = {dict(k)["feature"]: v for k, v in values(scraped, "sluice_serving_input_feature_count").items()}
        assert features == {"a": 3, "b": 3}
        durations = values(scraped, "sluice_serving_request_duration_seconds_count")
        assert sum(durations.values()) == 3
    Counter("extra_events", "registered by another module (e.g. the shadow comparison)", registry=one.registry).inc()
    assert values(one, "extra_events_total") == {frozenset(): 1.0}  # per worker, not summed


def test_without_a_fallback_there_is_no_fallback_counter() -> None:
    metrics = Metrics(Config.from_env({"MODEL_URI": "m.onnx"}))
    assert "sluice_serving_fallback_responses_total" not in metrics.render().decode()


def test_the_pod_is_ready_only_once_every_worker_has_loaded(tmp_path: Path) -> None:
    first, second = Peers(tmp_path, 0, 2), Peers(tmp_path, 1, 2)

    first.mark_ready()
    assert not first.all_ready()
    assert not second.all_ready()
    second.mark_ready()
    assert first.all_ready()
    assert second.all_ready()
