"""Small models made on the spot for the serving tests, and V2 request bodies."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
from onnx import helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from sluice_serving.app import Reply
from unit.serving.datatypes import NUMPY_OF

FEATURES = 20
CUSTOM_MODEL = Path(__file__).resolve().parents[3] / "examples" / "custom-model"
"""The documented custom Python model: a logistic regression reading its weights from weights.json."""


@dataclass(frozen=True)
class ModelFiles:
    """A trained model saved as joblib and as ONNX, with rows to predict and the expected answers."""

    joblib: Path
    onnx: Path
    digest: str
    rows: np.ndarray[Any, Any]
    expected: list[Any]


def digest_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def classification_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The rows and labels every classifier of these tests learns (300 rows of FEATURES features, 2 classes)."""
    x, y = make_classification(n_samples=300, n_features=FEATURES, random_state=0)
    return x, y


def make_classifier(directory: Path) -> ModelFiles:
    x, y = classification_data()
    model = LogisticRegression(max_iter=500).fit(x, y)
    return _save(directory / "classifier", model, x[:8])


def make_boosted_classifier(directory: Path, file_name: str) -> tuple[Path, Any]:
    """A small gradient-boosted classifier of `classification_data`, saved natively as `file_name` (XGBoost for
    .json and .ubj, LightGBM for .txt), and the fitted estimator, whose predictions the server must repeat."""
    x, y = classification_data()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name
    model: Any
    if path.suffix == ".txt":
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1).fit(x, y)
        model.booster_.save_model(path)
    else:
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(x, y)
        model.save_model(path)
    return path, model


def make_custom_model(directory: Path) -> tuple[Path, LogisticRegression]:
    """The documented custom model (CUSTOM_MODEL's model.py) given `make_classifier`'s weights: its directory and
    the logistic regression it must answer like."""
    x, y = classification_data()
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    target = directory / "custom-model"
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.py").write_bytes((CUSTOM_MODEL / "model.py").read_bytes())
    weights = {"coef": estimator.coef_[0].tolist(), "intercept": float(estimator.intercept_[0])}
    (target / "weights.json").write_text(json.dumps(weights))
    return target, estimator


def make_flipped_classifier(directory: Path) -> ModelFiles:
    """`make_classifier`'s data with every label flipped: a model that disagrees with it on nearly every row."""
    x, y = classification_data()
    model = LogisticRegression(max_iter=500).fit(x, 1 - y)
    return _save(directory / "classifier-flipped", model, x[:8])


def make_batch_of_one_classifier(directory: Path) -> Path:
    """`make_classifier`'s ONNX model as a faulty export leaves it: its graph first reshapes the input to one row
    (a batch size fixed when it was traced), so it loads and answers one-row requests but fails every batch of
    more rows inside onnxruntime. Returns the file (`digest_of` gives its digest)."""
    model = onnx.load(make_classifier(directory).onnx)
    graph = model.graph
    (first,) = graph.input
    reshaped = f"{first.name}_batch_of_one"
    for node in graph.node:
        node.input[:] = [reshaped if name == first.name else name for name in node.input]
    graph.initializer.append(numpy_helper.from_array(np.array([1, FEATURES], dtype=np.int64), "batch_of_one"))
    graph.node.insert(0, helper.make_node("Reshape", [first.name, "batch_of_one"], [reshaped]))
    path = directory / "classifier-batch-of-one.onnx"
    onnx.save(model, path)
    return path


def classification_dataset_csv(label: str = "label") -> str:
    """`make_classifier`'s training data as a CSV dataset (20 feature columns, then `label`)."""
    x, y = classification_data()
    header = ",".join([*(f"f{i}" for i in range(FEATURES)), label])
    lines = [",".join([*(f"{v:.6f}" for v in row), str(int(c))]) for row, c in zip(x, y, strict=True)]
    return "\n".join([header, *lines]) + "\n"


def make_regressor(directory: Path, features: int = 5) -> ModelFiles:
    x, y = make_regression(n_samples=200, n_features=features, random_state=0)
    model = LinearRegression().fit(x, y)
    return _save(directory / "regressor", model, x[:8])


def _save(stem: Path, model: Any, rows: np.ndarray[Any, Any]) -> ModelFiles:
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = stem.with_suffix(".joblib")
    joblib.dump(model, path)
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, rows.shape[1]]))],
        options={id(model): {"zipmap": False}} if hasattr(model, "classes_") else None,
        target_opset=17,
    )
    onnx_path = stem.with_suffix(".onnx")
    onnx_path.write_bytes(onx.SerializeToString())
    return ModelFiles(path, onnx_path, digest_of(path), rows, model.predict(rows).tolist())


def tensor(data: Any, shape: list[int], datatype: str = "FP64", name: str = "input") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def infer_body(*tensors: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(tensors), **extra}).encode()


def rows_body(rows: np.ndarray[Any, Any], datatype: str = "FP64", **extra: Any) -> bytes:
    return infer_body(tensor(rows.ravel().tolist(), list(rows.shape), datatype), **extra)


def settled(reply: Reply | Awaitable[Reply]) -> Reply:
    """An app's reply, awaited when the model answers later (SLUICE_FAULT_LATENCY)."""
    if isinstance(reply, Reply):
        return reply

    async def wait() -> Reply:
        return await reply

    return asyncio.run(wait())


def make_echo_model(directory: Path, datatypes: tuple[str, ...]) -> Path:
    """An ONNX model that takes one input of each of `datatypes` (named by it in lower case, shape [-1, 2]) and
    answers each unchanged as the output `<name>_out`: one model for every datatype a client can send."""
    inputs, outputs, nodes = [], [], []
    for datatype in datatypes:
        name = datatype.lower()
        element = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np.str_ if datatype == "BYTES" else NUMPY_OF[datatype]))
        inputs.append(helper.make_tensor_value_info(name, element, [None, 2]))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", element, [None, 2]))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = directory / "echo.onnx"
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
