"""Gradient-boosted trees saved natively: XGBoost (JSON or UBJSON model files, extra [xgboost], the CPU-only
`xgboost-cpu` distribution) and LightGBM (text model files, extra [lightgbm]).

Both are data, not code: like ONNX they load without a pinned digest. The file is the author's, so loading it
fails with fixed texts (the library's own message, which may quote the file, is not repeated)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from sluice_serving.models import Array, Model, ModelError, ModelFile, TensorSpec

# How the objective's raw output reads: class probabilities, class labels, or values (a regressor, a ranker).
PROBABILITIES, LABELS, VALUES = "probabilities", "labels", "values"
_XGBOOST_KINDS = {
    "binary:logistic": PROBABILITIES,
    "multi:softprob": PROBABILITIES,
    "binary:hinge": LABELS,
    "multi:softmax": LABELS,
}
_LIGHTGBM_KINDS = {
    "binary": PROBABILITIES,
    "multiclass": PROBABILITIES,
    "softmax": PROBABILITIES,
    "multiclassova": PROBABILITIES,
    "multiclass_ova": PROBABILITIES,
    "ova": PROBABILITIES,
    "ovr": PROBABILITIES,
}
_HEADER_LINES = 64  # a LightGBM text model names its objective within its first lines, before the first tree


class TreeModel(Model):
    """A tree ensemble with one input (`input`, the trained number of features) and the outputs of the
    scikit-learn runtime: `predict` (class labels of a classifier, values otherwise) and, when the objective
    gives class probabilities, `predict_proba` (one column per class)."""

    def __init__(self, width: int, names: Sequence[str], datatype: str, kind: str, classes: int) -> None:
        """`datatype`: the library's floats (of the input, of the values and probabilities it returns)."""
        self._kind = kind
        self.inputs = (TensorSpec("input", datatype, (-1, width)),)
        self.feature_names = tuple(names) if len(names) == width else tuple(str(i) for i in range(width))
        self.classifier = kind != VALUES
        self.prediction_output = "predict"
        outputs = [TensorSpec("predict", "INT64" if self.classifier else datatype, (-1,))]
        if kind == PROBABILITIES:
            outputs.append(TensorSpec("predict_proba", datatype, (-1, max(classes, 2))))
        self.outputs = tuple(outputs)

    def scores(self, x: Array) -> Array:
        """The library's raw prediction for the rows `x`."""
        raise NotImplementedError

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        scores = np.asarray(self.scores(inputs["input"]))
        if self._kind == VALUES:
            return {"predict": scores}
        if self._kind == LABELS:
            return {"predict": scores.astype(np.int64)}
        proba = scores if scores.ndim == 2 else np.column_stack((1 - scores, scores))
        out = {"predict": proba.argmax(axis=1)}
        if "predict_proba" in wanted:
            out["predict_proba"] = proba
        return out


class XGBoostModel(TreeModel):
    """An XGBoost Booster from its native JSON or UBJSON file, predicting in place (no DMatrix per request)."""

    platform = "xgboost"

    def __init__(self, file: ModelFile, num_threads: int) -> None:
        try:
            import xgboost as xgb
        except ImportError:
            raise ModelError("the xgboost format needs the xgboost library: install sluice-serving[xgboost]") from None
        if file.data.lstrip()[:1] != b"{":  # both JSON and UBJSON begin with an object
            raise ModelError(f"{file.name} is not an XGBoost JSON or UBJSON model file")
        try:
            booster = xgb.Booster(params={"nthread": num_threads})
            booster.load_model(bytearray(file.data))
            learner = json.loads(booster.save_config())["learner"]
            objective = str(learner["objective"]["name"])
            classes = int(learner["learner_model_param"]["num_class"])
            width = booster.num_features()
        except Exception:
            raise ModelError(f"xgboost cannot load {file.name} as a model") from None
        self._booster = booster
        super().__init__(width, booster.feature_names or (), "FP32", _XGBOOST_KINDS.get(objective, VALUES), classes)

    def scores(self, x: Array) -> Array:
        return np.asarray(self._booster.inplace_predict(x, validate_features=False))


class LightGBMModel(TreeModel):
    """A LightGBM Booster from its native text file."""

    platform = "lightgbm"

    def __init__(self, file: ModelFile, num_threads: int) -> None:
        try:
            import lightgbm as lgb
        except ImportError:
            raise ModelError(
                "the lightgbm format needs the lightgbm library: install sluice-serving[lightgbm]"
            ) from None
        try:
            text = file.data.decode()
        except UnicodeDecodeError:
            raise ModelError(f"{file.name} is not a LightGBM text model file") from None
        if not text.startswith("tree\n"):
            raise ModelError(f"{file.name} is not a LightGBM text model file")
        try:
            booster = lgb.Booster(model_str=text)
            width = booster.num_feature()
            classes = booster.num_model_per_iteration()
            names = booster.feature_name()
        except Exception:
            raise ModelError(f"lightgbm cannot load {file.name} as a model") from None
        self._booster = booster
        self._threads = num_threads
        super().__init__(width, names, "FP64", _LIGHTGBM_KINDS.get(_objective(text), VALUES), classes)

    def scores(self, x: Array) -> Array:
        return np.asarray(self._booster.predict(x, num_threads=self._threads))


def _objective(text: str) -> str:
    """The objective's name from a LightGBM text model's header (`objective=binary sigmoid:1` gives binary)."""
    for line in text.split("\n", _HEADER_LINES)[:_HEADER_LINES]:
        if line.startswith("objective="):
            words = line.removeprefix("objective=").split()
            return words[0] if words else ""
        if line.startswith("Tree="):
            break
    return ""


def load(file: ModelFile, fmt: str, num_threads: int) -> Model:
    """The tree model of format `fmt` ("xgboost" or "lightgbm") in `file`."""
    runtime: type[XGBoostModel | LightGBMModel] = XGBoostModel if fmt == "xgboost" else LightGBMModel
    return runtime(file, num_threads)
