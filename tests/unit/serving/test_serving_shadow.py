"""Shadow comparisons in process: the reference model's settings, agreement and absolute difference per row, and
the App comparing every answer off the request path (real models, real prometheus_client registry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sluice_serving import shadow
from sluice_serving.config import ConfigError
from sluice_serving.models import ModelFile, load_model
from sluice_serving.shadow import ReferenceSpec, Shadow
from unit.serving.support import ModelFiles, make_flipped_classifier, rows_body, settled
from unit.serving.test_serving_app import make_app, value

BASE = ("model", "7", "canary")


def counts(registry: CollectorRegistry) -> dict[str, float]:
    labels = dict(zip(("model", "version", "track"), BASE, strict=True))
    return {
        result: registry.get_sample_value("sluice_serving_shadow_comparisons_total", labels | {"result": result}) or 0.0
        for result in ("agree", "disagree")
    }


def test_no_reference_is_no_shadow_and_malformed_settings_are_refused() -> None:
    assert ReferenceSpec.from_env({}) is None
    uri = {"SLUICE_REFERENCE_MODEL_URI": "file:///m.onnx"}
    assert ReferenceSpec.from_env(uri | {"SLUICE_REFERENCE_MODEL_FORMAT": "onnx"}) == ReferenceSpec(
        "file:///m.onnx", "onnx", ""
    )
    with pytest.raises(ConfigError, match="SLUICE_REFERENCE_MODEL_FORMAT"):
        ReferenceSpec.from_env(uri)
    with pytest.raises(ConfigError, match="SLUICE_REFERENCE_MODEL_DIGEST"):
        ReferenceSpec.from_env(uri | {"SLUICE_REFERENCE_MODEL_FORMAT": "onnx", "SLUICE_REFERENCE_MODEL_DIGEST": "x"})


def test_a_classifier_agrees_with_itself_and_disagrees_with_its_flipped_twin(
    classifier: ModelFiles, tmp_path: Path
) -> None:
    model = load_model(ModelFile.read(classifier.onnx), "onnx", False, 1)
    flipped = load_model(ModelFile.read(make_flipped_classifier(tmp_path).onnx), "onnx", False, 1)
    inputs = {model.inputs[0].name: classifier.rows.astype(np.float32)}
    ours = model.predict(inputs, (model.prediction_output,))[model.prediction_output]
    same, twin = CollectorRegistry(), CollectorRegistry()
    Shadow(model, True, same, BASE).compare(inputs, ours)
    Shadow(flipped, True, twin, BASE).compare(inputs, ours)
    assert counts(same) == {"agree": 8, "disagree": 0}
    assert counts(twin)["disagree"] >= 7, counts(twin)


def test_a_regressor_records_the_absolute_difference_per_row(regressor: ModelFiles) -> None:
    model = load_model(ModelFile.read(regressor.onnx), "onnx", False, 1)
    inputs = {model.inputs[0].name: regressor.rows.astype(np.float32)}
    ours = model.predict(inputs, (model.prediction_output,))[model.prediction_output] + 1.0
    registry = CollectorRegistry()
    Shadow(model, False, registry, BASE).compare(inputs, ours)
    labels = dict(zip(("model", "version", "track"), BASE, strict=True))
    assert registry.get_sample_value("sluice_serving_shadow_abs_difference_count", labels) == 8
    total = registry.get_sample_value("sluice_serving_shadow_abs_difference_sum", labels)
    assert total == pytest.approx(8.0, rel=1e-3)
    assert counts(registry) == {"agree": 0, "disagree": 8}


def test_the_app_compares_every_answer_with_the_reference_off_the_request_path(
    classifier: ModelFiles, tmp_path: Path
) -> None:
    app = make_app(classifier, "onnx")
    flipped = make_flipped_classifier(tmp_path)
    env = {"SLUICE_REFERENCE_MODEL_URI": str(flipped.onnx), "SLUICE_REFERENCE_MODEL_FORMAT": "onnx"}
    app.shadow = shadow.from_env(app.cfg, app.metrics.registry, env)
    assert app.shadow is not None
    for _ in range(3):
        assert settled(app.handle("POST", "/v2/models/model/infer", rows_body(classifier.rows, "FP32"))).status == 200
    app.shadow.close()
    disagreed = value(app, "sluice_serving_shadow_comparisons_total", result="disagree")
    agreed = value(app, "sluice_serving_shadow_comparisons_total", result="agree")
    assert disagreed + agreed == 24
    assert disagreed >= 21
