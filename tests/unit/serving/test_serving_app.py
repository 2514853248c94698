"""The API in process (no sockets): routing, inference, errors, fault injection and metrics content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice_serving.app import App, Reply
from sluice_serving.config import Config
from sluice_serving.metrics import Metrics
from sluice_serving.models import ModelFile, load_model
from unit.serving.support import ModelFiles, make_batch_of_one_classifier, rows_body, settled

INFER = "/v2/models/model/infer"


def make_app(files: ModelFiles | Path, fmt: str = "sklearn", **env: str) -> App:
    """An app serving `files` in format `fmt` (or the model file `files`, when it is a path)."""
    path = files if isinstance(files, Path) else files.joblib if fmt == "sklearn" else files.onnx
    cfg = Config.from_env({"MODEL_URI": str(path), "MODEL_VERSION": "7", "SLUICE_TRACK": "canary", **env})
    metrics = Metrics(cfg)
    app = App(cfg, metrics)
    model = load_model(ModelFile.read(path), fmt, True, 1)
    metrics.model_loaded(0.5, model.feature_names, model.inputs[0].shape[1], model.classifier)
    app.set_model(model)
    return app


def body_of(reply: Reply) -> Any:
    return json.loads(reply.body)


def samples(app: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = settled(app.handle("GET", "/metrics", b"")).body.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(app: App, name: str, **labels: str) -> float:
    want = {"model": "model", "version": "7", "track": "canary", **labels}
    found = [v for (n, ls), v in samples(app).items() if n == name and want.items() <= dict(ls).items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.fixture
def app(classifier: ModelFiles) -> App:
    return make_app(classifier)


def test_infer_returns_the_models_predictions(app: App, classifier: ModelFiles) -> None:
    reply = settled(app.handle("POST", INFER, rows_body(classifier.rows, id="abc")))
    doc = body_of(reply)
    assert reply.status == 200
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("model", "7", "abc")
    predict = doc["outputs"][0]
    assert (predict["name"], predict["datatype"], predict["shape"]) == ("predict", "INT64", [8])
    assert predict["data"] == classifier.expected
    assert doc["outputs"][1]["shape"] == [8, 2]


def test_the_versioned_infer_path_answers_for_the_served_version(app: App, classifier: ModelFiles) -> None:
    assert settled(app.handle("POST", "/v2/models/model/versions/7/infer", rows_body(classifier.rows))).status == 200
    reply = settled(app.handle("POST", "/v2/models/model/versions/8/infer", rows_body(classifier.rows)))
    assert reply.status == 404
    assert "unknown version" in body_of(reply)["error"]


def test_the_v1_predict_form_returns_predictions(app: App, classifier: ModelFiles) -> None:
    body = json.dumps({"instances": classifier.rows.tolist()}).encode()
    reply = settled(app.handle("POST", "/v1/models/model:predict", body))
    assert body_of(reply) == {"predictions": classifier.expected}


def test_metadata_lists_inputs_outputs_and_versions(app: App) -> None:
    doc = body_of(settled(app.handle("GET", "/v2/models/model", b"")))
    assert doc["versions"] == ["7"]
    assert doc["platform"] == "sklearn"
    assert doc["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 20]}]
    assert [o["name"] for o in doc["outputs"]] == ["predict", "predict_proba"]


def test_the_server_is_not_ready_before_the_model_is_loaded(classifier: ModelFiles) -> None:
    cfg = Config.from_env({"MODEL_URI": str(classifier.joblib)})
    app = App(cfg, Metrics(cfg))
    assert settled(app.handle("GET", "/v2/health/live", b"")).status == 200
    assert settled(app.handle("GET", "/v2/health/ready", b"")).status == 503
    assert settled(app.handle("GET", "/v2/models/model/ready", b"")).status == 503
    reply = settled(app.handle("POST", INFER, rows_body(classifier.rows)))
    assert (reply.status, reply.endpoint) == (503, "infer")
    assert "not ready" in body_of(reply)["error"]


def test_a_draining_server_reports_not_ready(app: App) -> None:
    app.draining = True
    assert settled(app.handle("GET", "/v2/health/ready", b"")).status == 503


def test_a_model_error_on_valid_json_is_a_400_not_a_500(regressor: ModelFiles) -> None:
    app = make_app(regressor, "onnx")
    body = rows_body(regressor.rows.astype(np.float32), "FP32")
    assert settled(app.handle("POST", INFER, body)).status == 200


def test_injected_errors_are_500s_counted_as_such(classifier: ModelFiles) -> None:
    app = make_app(classifier, SLUICE_FAULT_ERROR_RATE="1")
    reply = settled(app.handle("POST", INFER, rows_body(classifier.rows)))
    assert reply.status == 500
    assert "injected fault" in body_of(reply)["error"]


def test_a_model_that_fails_inside_its_runtime_answers_500_so_the_analysis_counts_it(
    classifier: ModelFiles, tmp_path: Path
) -> None:
    """A user's broken export (a graph that reshapes every batch to one row) loads and passes readiness, but its
    answers to batches fail in onnxruntime: 500s, the code the canary analysis counts as errors (a 400 it would
    not count, as the client's fault)."""
    app = make_app(make_batch_of_one_classifier(tmp_path), "onnx")
    assert settled(app.handle("GET", "/v2/health/ready", b"")).status == 200
    one_row = rows_body(classifier.rows[:1].astype(np.float32), "FP32")
    assert settled(app.handle("POST", INFER, one_row)).status == 200
    batch = rows_body(classifier.rows.astype(np.float32), "FP32")
    assert settled(app.handle("POST", INFER, batch)).status == 500


def test_injected_latency_makes_only_the_models_answers_late(classifier: ModelFiles) -> None:
    app = make_app(classifier, SLUICE_FAULT_LATENCY="0.01")
    late = app.handle("POST", INFER, rows_body(classifier.rows))
    assert not isinstance(late, Reply), "the answer of the model is an awaitable"
    reply = settled(late)
    assert reply.status == 200
    assert body_of(reply)["outputs"][0]["data"] == classifier.expected
    assert isinstance(app.handle("POST", INFER, b"{"), Reply), "a request the model never sees is answered at once"
    assert isinstance(app.handle("GET", "/v2/health/ready", b""), Reply)


def test_injected_errors_come_late_too(classifier: ModelFiles) -> None:
    app = make_app(classifier, SLUICE_FAULT_LATENCY="0.01", SLUICE_FAULT_ERROR_RATE="1")
    late = app.handle("POST", INFER, rows_body(classifier.rows))
    assert not isinstance(late, Reply)
    reply = settled(late)
    assert reply.status == 500
    assert "injected fault" in body_of(reply)["error"]


def test_metrics_count_predicted_classes_and_feature_distributions(app: App, classifier: ModelFiles) -> None:
    settled(app.handle("POST", INFER, rows_body(classifier.rows)))
    ones = sum(1 for y in classifier.expected if y == 1)
    assert value(app, "sluice_serving_predicted_class_total", **{"class": "1"}) == ones
    assert value(app, "sluice_serving_input_feature_count", feature="0") == 8
    below_zero = int((classifier.rows[:, 3] <= 0).sum())
    assert value(app, "sluice_serving_input_feature_bucket", feature="3", le="0.0") == below_zero


def test_metrics_bucket_regression_values(regressor: ModelFiles) -> None:
    app = make_app(regressor, SLUICE_PREDICTION_BUCKETS="-100,0,100")
    settled(app.handle("POST", INFER, rows_body(regressor.rows)))
    values = np.asarray(regressor.expected)
    assert value(app, "sluice_serving_predictions_count") == 8
    assert value(app, "sluice_serving_predictions_bucket", le="0.0") == int((values <= 0).sum())


def test_a_histogram_with_only_non_negative_buckets_also_has_a_sum(regressor: ModelFiles) -> None:
    app = make_app(regressor, SLUICE_PREDICTION_BUCKETS="0,100,1000")
    rows = np.abs(regressor.rows)
    settled(app.handle("POST", INFER, rows_body(rows)))
    predicted = json.loads(settled(app.handle("POST", INFER, rows_body(rows))).body)["outputs"][0]["data"]
    assert value(app, "sluice_serving_predictions_sum") == pytest.approx(2 * sum(predicted))


def test_only_the_configured_number_of_features_is_monitored(classifier: ModelFiles) -> None:
    app = make_app(classifier, SLUICE_MONITORED_FEATURES="4")
    settled(app.handle("POST", INFER, rows_body(classifier.rows)))
    features = {dict(ls)["feature"] for (n, ls) in samples(app) if n == "sluice_serving_input_feature_count"}
    assert features == {"0", "1", "2", "3"}


def test_class_labels_beyond_the_cap_are_counted_as_other(app: App) -> None:
    distributions = app.metrics.distributions
    for label in range(70):
        distributions.observe(np.zeros((1, 20)), np.array([label]))
    classes = {dict(ls)["class"] for (n, ls) in samples(app) if n == "sluice_serving_predicted_class_total"}
    assert len(classes) == 65
    assert value(app, "sluice_serving_predicted_class_total", **{"class": "other"}) == 6


def test_requests_are_counted_by_endpoint_and_code(app: App, classifier: ModelFiles) -> None:
    app.metrics.record("infer", 200, 0.002)
    app.metrics.record("infer", 400, 0.001)
    app.metrics.record("predict", 200, 0.003)
    assert value(app, "sluice_serving_requests_total", endpoint="infer", code="200") == 1
    assert value(app, "sluice_serving_requests_total", endpoint="infer", code="400") == 1
    assert value(app, "sluice_serving_request_duration_seconds_count", endpoint="infer") == 2
    assert value(app, "sluice_serving_request_duration_seconds_bucket", endpoint="infer", le="0.001") == 1
    assert value(app, "sluice_serving_model_load_duration_seconds") == 0.5
    assert value(app, "sluice_serving_requests_in_flight") == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/v2/models/other", 404),
        ("GET", "/v2/models/other/ready", 404),
        ("POST", "/v2/models/other/infer", 404),
        ("GET", INFER, 405),
        ("POST", "/v2/health/live", 405),
        ("DELETE", "/metrics", 405),
        ("POST", "/v1/models/other:predict", 404),
    ],
)
def test_unknown_routes_models_and_methods_get_json_errors(app: App, method: str, path: str, status: int) -> None:
    reply = settled(app.handle(method, path, b""))
    assert reply.status == status
    assert body_of(reply)["error"]
