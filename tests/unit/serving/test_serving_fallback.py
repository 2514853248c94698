"""The fallback (issue #9 item 5) in process: what answers when the model raises, how it is marked and counted,
and what it refuses at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice_serving.app import App
from sluice_serving.config import Config, ConfigError
from sluice_serving.fallback import answerer
from sluice_serving.metrics import Metrics
from sluice_serving.models import ModelError, ModelFile, load_model
from unit.serving.flaky import save_flaky
from unit.serving.support import ModelFiles, make_regressor, rows_body, settled
from unit.serving.test_serving_app import value

INFER = "/v2/models/model/infer"
PREDICT = "/v1/models/model:predict"


@pytest.fixture(scope="module")
def flaky(classifier: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("flaky") / "flaky.joblib"
    return path, save_flaky(str(classifier.joblib), str(path), above=1.0)


def flaky_app(flaky: tuple[Path, str], classifier: ModelFiles, **env: str) -> App:
    path, _ = flaky
    cfg = Config.from_env({"MODEL_URI": str(path), "MODEL_VERSION": "7", "SLUICE_TRACK": "canary", **env})
    metrics = Metrics(cfg)
    app = App(cfg, metrics)
    model = load_model(ModelFile.read(path), "sklearn", True, 1)
    fallback_model = (
        load_model(ModelFile.read(classifier.joblib), "sklearn", True, 1) if cfg.fallback and cfg.fallback.uri else None
    )
    metrics.model_loaded(0.5, model.feature_names, 20, model.classifier)
    app.set_model(model, answerer(cfg.fallback, model, fallback_model) if cfg.fallback else None)
    return app


def good_and_bad_rows(classifier: ModelFiles) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rows = classifier.rows.copy()
    rows[:, 0] = 0.5
    bad = rows.copy()
    bad[2, 0] = 5.0  # one row above the flaky model's threshold fails the whole batch
    return rows, bad


def test_without_a_fallback_the_models_exception_is_a_500(flaky: tuple[Path, str], classifier: ModelFiles) -> None:
    app = flaky_app(flaky, classifier)
    good, bad = good_and_bad_rows(classifier)
    assert settled(app.handle("POST", INFER, rows_body(good))).status == 200
    reply = settled(app.handle("POST", INFER, rows_body(bad)))
    assert reply.status == 500
    assert "flaky model" in json.loads(reply.body)["error"]


def test_a_constant_fallback_answers_every_row_marked_and_counted(
    flaky: tuple[Path, str], classifier: ModelFiles
) -> None:
    app = flaky_app(flaky, classifier, SLUICE_FALLBACK='constant:{"predict": 0, "predict_proba": [0.5, 0.5]}')
    good, bad = good_and_bad_rows(classifier)
    assert value(app, "sluice_serving_fallback_responses_total", endpoint="infer", fallback="constant") == 0
    ok = settled(app.handle("POST", INFER, rows_body(good)))
    assert (ok.status, ok.headers) == (200, b"")
    reply = settled(app.handle("POST", INFER, rows_body(bad)))
    assert reply.status == 200
    assert reply.headers == b"x-sluice-fallback: constant\r\n"
    outputs = {o["name"]: o for o in json.loads(reply.body)["outputs"]}
    assert outputs["predict"]["data"] == [0] * 8
    assert outputs["predict_proba"]["shape"] == [8, 2]
    assert outputs["predict_proba"]["data"] == [0.5] * 16
    assert value(app, "sluice_serving_fallback_responses_total", endpoint="infer", fallback="constant") == 1
    # The answer was a 200 (what the client got); the analysis adds the fallback counter to the errors.
    app.metrics.record("infer", reply.status, 0.001)
    assert value(app, "sluice_serving_requests_total", endpoint="infer", code="200") == 1


def test_a_constant_without_a_requested_output_is_still_a_500(flaky: tuple[Path, str], classifier: ModelFiles) -> None:
    app = flaky_app(flaky, classifier, SLUICE_FALLBACK="constant:1")
    _, bad = good_and_bad_rows(classifier)
    assert settled(app.handle("POST", INFER, rows_body(bad))).status == 500  # predict_proba has no constant
    only_predict = rows_body(bad, outputs=[{"name": "predict"}])
    reply = settled(app.handle("POST", INFER, only_predict))
    assert (reply.status, json.loads(reply.body)["outputs"][0]["data"]) == (200, [1] * 8)
    assert value(app, "sluice_serving_fallback_responses_total", endpoint="infer", fallback="constant") == 1


def test_the_previous_model_answers_when_the_new_one_raises(flaky: tuple[Path, str], classifier: ModelFiles) -> None:
    app = flaky_app(
        flaky,
        classifier,
        SLUICE_FALLBACK="model",
        SLUICE_FALLBACK_MODEL_URI=str(classifier.joblib),
        SLUICE_FALLBACK_MODEL_DIGEST=classifier.digest,
    )
    _, bad = good_and_bad_rows(classifier)
    reply = settled(app.handle("POST", INFER, rows_body(bad, outputs=[{"name": "predict"}])))
    assert reply.headers == b"x-sluice-fallback: model\r\n"
    assert (
        json.loads(reply.body)["outputs"][0]["data"]
        == load_model(ModelFile.read(classifier.joblib), "sklearn", True, 1)
        .predict({"input": bad}, ["predict"])["predict"]
        .tolist()
    )
    v1 = settled(app.handle("POST", PREDICT, json.dumps({"instances": bad.tolist()}).encode()))
    assert (v1.status, v1.headers) == (200, b"x-sluice-fallback: model\r\n")
    assert value(app, "sluice_serving_fallback_responses_total", endpoint="predict", fallback="model") == 1


def test_input_the_model_rejects_is_a_400_not_a_fallback(flaky: tuple[Path, str], classifier: ModelFiles) -> None:
    app = flaky_app(flaky, classifier, SLUICE_FALLBACK="constant:1")
    rows, _ = good_and_bad_rows(classifier)
    rows[0, 0] = -1000.0  # the model raises ValueError: the client's input, not the model's failure
    rejected = settled(app.handle("POST", INFER, rows_body(rows, outputs=[{"name": "predict"}])))
    assert (rejected.status, rejected.headers) == (400, b"")
    assert "below -100" in json.loads(rejected.body)["error"]
    bad_json = settled(app.handle("POST", INFER, b"{"))
    assert (bad_json.status, bad_json.headers) == (400, b"")
    assert value(app, "sluice_serving_fallback_responses_total", endpoint="infer", fallback="constant") == 0


def test_injected_faults_are_answered_by_the_fallback(flaky: tuple[Path, str], classifier: ModelFiles) -> None:
    app = flaky_app(flaky, classifier, SLUICE_FALLBACK="constant:1", SLUICE_FAULT_ERROR_RATE="1")
    good, _ = good_and_bad_rows(classifier)
    reply = settled(app.handle("POST", INFER, rows_body(good, outputs=[{"name": "predict"}])))
    assert (reply.status, reply.headers) == (200, b"x-sluice-fallback: constant\r\n")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLUICE_FALLBACK": "constant:{"}, "not JSON"),
        ({"SLUICE_FALLBACK": "constant:null"}, "give a value"),
        ({"SLUICE_FALLBACK": "constant:{}"}, "give a value"),
        ({"SLUICE_FALLBACK": "previous"}, "must be constant:<json> or model"),
        ({"SLUICE_FALLBACK": "model"}, "needs SLUICE_FALLBACK_MODEL_URI"),
        ({"SLUICE_FALLBACK_MODEL_URI": "m.onnx"}, "SLUICE_FALLBACK is not 'model'"),
        ({"SLUICE_FALLBACK": "constant:1", "SLUICE_FALLBACK_MODEL_URI": "m.onnx"}, "exclude each other"),
        ({"SLUICE_FALLBACK": "model", "SLUICE_FALLBACK_MODEL_URI": "m.bin"}, "SLUICE_FALLBACK_MODEL_FORMAT"),
        ({"SLUICE_FALLBACK": "model", "SLUICE_FALLBACK_MODEL_URI": "m.onnx", "SLUICE_FALLBACK_MODEL_DIGEST": "x"},
         "SLUICE_FALLBACK_MODEL_DIGEST"),
        ({"SLUICE_WORKERS": "0"}, "SLUICE_WORKERS"),
    ],
)  # fmt: skip
def test_bad_fallback_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env({"MODEL_URI": "m.onnx", **env})


def test_a_fallback_that_does_not_fit_the_model_is_refused(classifier: ModelFiles, tmp_path: Path) -> None:
    model = load_model(ModelFile.read(classifier.joblib), "sklearn", True, 1)
    cfg = Config.from_env({"MODEL_URI": "m.joblib", "SLUICE_FALLBACK": 'constant:{"label": 1}'})
    assert cfg.fallback is not None
    with pytest.raises(ModelError, match="unknown output"):
        answerer(cfg.fallback, model, None)
    cfg = Config.from_env({"MODEL_URI": "m.joblib", "SLUICE_FALLBACK": 'constant:{"predict_proba": [0.5, 0.5]}'})
    assert cfg.fallback is not None
    with pytest.raises(ModelError, match="prediction output"):
        answerer(cfg.fallback, model, None)
    cfg = Config.from_env({"MODEL_URI": "m.joblib", "SLUICE_FALLBACK": 'constant:{"predict": {"a": 1}}'})
    assert cfg.fallback is not None
    with pytest.raises(ModelError, match="not a number"):
        answerer(cfg.fallback, model, None)
    other = make_regressor(tmp_path, features=5)
    cfg = Config.from_env({"MODEL_URI": "m.joblib", "SLUICE_FALLBACK": "model", "SLUICE_FALLBACK_MODEL_URI": "o.onnx"})
    assert cfg.fallback is not None
    with pytest.raises(ModelError, match="inputs"):
        answerer(cfg.fallback, model, load_model(ModelFile.read(other.joblib), "sklearn", True, 1))


def test_a_fallback_model_also_answers_the_prediction_output_the_metrics_read(classifier: ModelFiles) -> None:
    fallback_model = load_model(ModelFile.read(classifier.onnx), "onnx", False, 1)
    served = load_model(ModelFile.read(classifier.onnx), "onnx", False, 1)
    served.prediction_output = "probabilities"  # (the served model's prediction is not the fallback's)
    cfg = Config.from_env({"MODEL_URI": "m.onnx", "SLUICE_FALLBACK": "model", "SLUICE_FALLBACK_MODEL_URI": "o.onnx"})
    assert cfg.fallback is not None
    fallback = answerer(cfg.fallback, served, fallback_model)
    out = fallback.predict({"input": classifier.rows.astype(np.float32)}, ["label"])
    assert sorted(out) == ["label", "probabilities"]
