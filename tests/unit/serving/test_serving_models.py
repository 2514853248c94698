"""Loading ONNX and scikit-learn models and their V2 signatures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from sluice_serving.models import ModelError, ModelFile, TensorSpec, load_model
from unit.serving.support import FEATURES, ModelFiles


def test_an_onnx_classifier_exposes_its_signature_and_predicts(classifier: ModelFiles) -> None:
    model = load_model(ModelFile.read(classifier.onnx), "onnx", False, 1)
    assert model.inputs == (TensorSpec("input", "FP32", (-1, FEATURES)),)
    assert [o.name for o in model.outputs] == ["label", "probabilities"]
    assert model.classifier
    out = model.predict({"input": classifier.rows.astype(np.float32)}, ["label"])
    assert out["label"].tolist() == classifier.expected


def test_a_joblib_classifier_has_predict_and_predict_proba(classifier: ModelFiles) -> None:
    model = load_model(ModelFile.read(classifier.joblib), "sklearn", True, 1)
    assert model.inputs == (TensorSpec("input", "FP64", (-1, FEATURES)),)
    assert [(o.name, o.datatype) for o in model.outputs] == [("predict", "INT64"), ("predict_proba", "FP64")]
    out = model.predict({"input": classifier.rows}, ["predict", "predict_proba"])
    assert out["predict"].tolist() == classifier.expected
    assert out["predict_proba"].shape == (len(classifier.rows), 2)


def test_a_regressor_is_not_a_classifier(regressor: ModelFiles) -> None:
    model = load_model(ModelFile.read(regressor.joblib), "sklearn", True, 1)
    assert not model.classifier
    assert [(o.name, o.datatype) for o in model.outputs] == [("predict", "FP64")]
    assert not load_model(ModelFile.read(regressor.onnx), "onnx", False, 1).classifier


def test_a_pickle_file_is_refused_without_a_pinned_digest(classifier: ModelFiles) -> None:
    with pytest.raises(ModelError, match="MODEL_DIGEST"):
        load_model(ModelFile.read(classifier.joblib), "sklearn", False, 1)


def test_an_onnx_model_with_zipmap_output_is_refused_with_a_hint(tmp_path: Path, classifier: ModelFiles) -> None:
    x = classifier.rows
    model = LogisticRegression().fit(x, [0, 1] * (len(x) // 2))
    onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, FEATURES]))], target_opset=17)
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(onx.SerializeToString())
    with pytest.raises(ModelError, match="zipmap"):
        load_model(ModelFile.read(path), "onnx", False, 1)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        load_model(ModelFile.read(path), "onnx", False, 1)


def test_scikit_learn_predictions_skip_the_finiteness_scan_in_the_predicting_thread(classifier: ModelFiles) -> None:
    import threading

    import sklearn

    model = load_model(ModelFile.read(classifier.joblib), "sklearn", True, 1)
    seen: dict[str, object] = {}

    def predict_in_a_new_thread() -> None:
        seen["before"] = sklearn.get_config()["assume_finite"]
        seen["out"] = model.predict({"input": classifier.rows}, ["predict"])["predict"].tolist()
        seen["after"] = sklearn.get_config()["assume_finite"]

    thread = threading.Thread(target=predict_in_a_new_thread)
    thread.start()
    thread.join()
    assert seen == {"before": False, "out": classifier.expected, "after": True}


def test_an_onnx_model_answers_the_wanted_outputs_and_its_prediction_output(classifier: ModelFiles) -> None:
    model = load_model(ModelFile.read(classifier.onnx), "onnx", False, 1)
    rows = {"input": classifier.rows.astype(np.float32)}
    assert list(model.predict(rows, ("label",))) == ["label"]
    out = model.predict(rows, ("probabilities",))
    assert list(out) == ["probabilities", "label"]
    assert out["label"].tolist() == classifier.expected
    assert out["probabilities"].shape == (len(classifier.rows), 2)
