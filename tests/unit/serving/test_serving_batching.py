"""Adaptive batching (SLUICE_MAX_BATCH_SIZE): the merge and split of one-row requests, the batching wrapper on an
event loop, and the app answering concurrent requests through it, each with its own answer, error and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice_serving.app import App, Reply
from sluice_serving.batching import BatchingModel, Pending, groups, merge, merge_key, split
from sluice_serving.config import Config, ConfigError
from sluice_serving.custom import pack_directory
from sluice_serving.models import Array, Model, ModelFile, Results, TensorSpec, load_model
from unit.serving.support import ModelFiles, infer_body, make_boosted_classifier, make_custom_model, rows_body, tensor
from unit.serving.test_serving_app import INFER, body_of, make_app, value


def row(*values: float, dtype: Any = np.float64) -> dict[str, Array]:
    return {"input": np.asarray([values], dtype=dtype)}


LOOP = asyncio.new_event_loop()
"""The loop of the futures of the requests that are only merged and split, never answered."""


def pending(inputs: dict[str, Array], wanted: Sequence[str] = ("predict",)) -> Pending:
    return Pending(inputs, wanted, LOOP.create_future())


class Recording(Model):
    """A regressor answering each row's sum (and its first value as `first`), recording the rows of every call;
    it raises ValueError for a row whose first value is negative, as a model rejecting its input does."""

    inputs = (TensorSpec("input", "FP64", (-1, 2)),)
    outputs = (TensorSpec("predict", "FP64", (-1,)), TensorSpec("first", "FP64", (-1,)))
    prediction_output = "predict"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results:
        x = inputs["input"]
        self.calls.append(len(x))
        if (x[:, 0] < 0).any():
            raise ValueError("negative first value")
        return {"predict": x.sum(axis=1), "first": x[:, 0]}


def test_only_one_row_requests_are_batched() -> None:
    assert merge_key(row(1, 2)) is not None
    assert merge_key({"input": np.zeros((2, 2))}) is None
    assert merge_key({"input": np.zeros((0, 2))}) is None
    assert merge_key({"input": np.float64(1.0)}) is None  # type: ignore[dict-item]
    assert merge_key({"a": np.zeros((1, 2)), "b": np.zeros((3,))}) is None


def test_requests_merge_only_with_the_same_input_names_dtypes_and_widths() -> None:
    a, b = pending(row(1, 2)), pending(row(3, 4))
    other_dtype = pending(row(1, 2, dtype=np.float32))
    other_width = pending(row(1, 2, 3))
    other_name = pending({"x": np.zeros((1, 2))})
    c = pending(row(5, 6))
    assert groups([a, other_dtype, b, other_width, other_name, c]) == [[a, b, c], [other_dtype], [other_width],
                                                                      [other_name]]  # fmt: skip


def test_a_merged_call_takes_every_row_in_order_and_the_outputs_any_request_wants() -> None:
    inputs, wanted = merge([pending(row(1, 2), ("predict",)), pending(row(3, 4), ("first", "predict"))])
    assert inputs["input"].tolist() == [[1, 2], [3, 4]]
    assert wanted == ["predict", "first"]


def test_the_split_gives_each_request_its_own_row_of_every_output() -> None:
    rows = split({"predict": np.array([3, 7]), "proba": np.array([[0.1, 0.9], [0.8, 0.2]])}, 2)
    assert rows is not None
    assert [r["predict"].tolist() for r in rows] == [[3], [7]]
    assert [r["proba"].tolist() for r in rows] == [[[0.1, 0.9]], [[0.8, 0.2]]]


def test_outputs_without_one_row_per_request_cannot_be_split() -> None:
    assert split({"predict": np.array([3, 7]), "total": np.array([10])}, 2) is None
    assert split({"predict": np.array(3.0)}, 1) is None


async def answers(model: Model, requests: list[dict[str, Array]]) -> list[Results | BaseException]:
    """The model's answers to `requests`, asked in one event-loop turn (as concurrent requests are read)."""
    pending_ = [model.answer(r, ["predict", "first"]) for r in requests]

    async def wait(a: Results | Awaitable[Results]) -> Results:
        return await a if isinstance(a, Awaitable) else a

    return await asyncio.gather(*(wait(a) for a in pending_), return_exceptions=True)


def sums(results: list[Results | BaseException]) -> list[Any]:
    return [r if isinstance(r, BaseException) else r["predict"].tolist() for r in results]


def test_concurrent_one_row_requests_share_one_model_call_and_get_their_own_rows() -> None:
    inner = Recording()
    results = asyncio.run(answers(BatchingModel(inner, 16, 0), [row(i, 1) for i in range(5)]))
    assert inner.calls == [5]
    assert sums(results) == [[1], [2], [3], [4], [5]]


def test_a_full_batch_is_answered_at_once_and_the_rest_wait_for_the_next() -> None:
    inner = Recording()
    results = asyncio.run(answers(BatchingModel(inner, 2, 0), [row(i, 0) for i in range(5)]))
    assert inner.calls == [2, 2, 1]
    assert sums(results) == [[0], [1], [2], [3], [4]]


def test_a_request_the_model_rejects_fails_alone_and_the_others_are_answered() -> None:
    inner = Recording()
    results = asyncio.run(answers(BatchingModel(inner, 16, 0.01), [row(1, 1), row(-1, 1), row(2, 2)]))
    assert inner.calls == [3, 1, 1, 1], "the merged call failed; each request was then asked alone"
    assert sums(results)[0::2] == [[2], [4]]
    assert isinstance(results[1], ValueError)


def test_requests_of_several_rows_go_to_the_model_at_once() -> None:
    inner = Recording()
    model = BatchingModel(inner, 16, 0)
    answer = model.answer({"input": np.ones((3, 2))}, ["predict"])
    assert isinstance(answer, dict)
    assert answer["predict"].tolist() == [2, 2, 2]


def test_batching_is_off_unless_configured_and_its_settings_are_checked(classifier: ModelFiles) -> None:
    assert not isinstance(make_app(classifier).model, BatchingModel)
    assert isinstance(make_app(classifier, SLUICE_MAX_BATCH_SIZE="8").model, BatchingModel)
    for env in ({"SLUICE_MAX_BATCH_SIZE": "0"}, {"SLUICE_MAX_BATCH_SIZE": "x"}, {"SLUICE_MAX_BATCH_TIME": "-1"},
                {"SLUICE_MAX_BATCH_TIME": "nan"}):  # fmt: skip
        with pytest.raises(ConfigError, match="SLUICE_MAX_BATCH"):
            Config.from_env({"MODEL_URI": "m.onnx", **env})


async def replies(app: App, bodies: list[bytes]) -> list[Reply]:
    """The app's replies to `bodies`, all handled in one event-loop turn."""
    handled = [app.handle("POST", INFER, body) for body in bodies]

    async def wait(reply: Reply | Awaitable[Reply]) -> Reply:
        return reply if isinstance(reply, Reply) else await reply

    return list(await asyncio.gather(*(wait(r) for r in handled)))


def runtime_files(fmt: str, classifier: ModelFiles, directory: Path) -> ModelFile:
    if fmt == "python":
        model_dir, _ = make_custom_model(directory)
        return ModelFile(model_dir.name, pack_directory(model_dir, 1 << 20), directory=True)
    if fmt in ("xgboost", "lightgbm"):
        path, _ = make_boosted_classifier(directory, "model.json" if fmt == "xgboost" else "model.txt")
        return ModelFile.read(path)
    return ModelFile.read(classifier.onnx if fmt == "onnx" else classifier.joblib)


@pytest.mark.parametrize("fmt", ["onnx", "sklearn", "xgboost", "lightgbm", "python"])
def test_every_runtime_answers_concurrent_requests_batched_as_it_answers_them_alone(
    fmt: str, classifier: ModelFiles, tmp_path: Path
) -> None:
    file = runtime_files(fmt, classifier, tmp_path)
    model = load_model(file, fmt, True, 1)
    app = make_app(classifier, SLUICE_MAX_BATCH_SIZE="16")
    app.set_model(model)
    assert isinstance(app.model, BatchingModel)
    dtype, datatype = (np.float32, "FP32") if model.inputs[0].datatype == "FP32" else (np.float64, "FP64")
    rows = classification_rows(dtype)
    batched = asyncio.run(replies(app, [rows_body(r[None, :], datatype) for r in rows]))
    alone = model.predict({"input": rows}, [o.name for o in model.outputs])
    for reply, i in zip(batched, range(len(rows)), strict=True):
        assert reply.status == 200
        for output in body_of(reply)["outputs"]:
            assert output["shape"][0] == 1
            assert np.allclose(output["data"], np.ravel(alone[output["name"]][i]), atol=1e-6), (fmt, i, output)


def classification_rows(dtype: Any) -> np.ndarray[Any, Any]:
    from unit.serving.support import classification_data

    return classification_data()[0][:12].astype(dtype)


def test_each_batched_request_keeps_its_own_validation_error_and_metrics(classifier: ModelFiles) -> None:
    app = make_app(classifier, SLUICE_MAX_BATCH_SIZE="16")
    good = [rows_body(classifier.rows[i : i + 1]) for i in range(8)]
    too_narrow = rows_body(classifier.rows[:1, :5])
    got = asyncio.run(replies(app, [*good[:4], too_narrow, *good[4:]]))
    assert [r.status for r in got] == [200] * 4 + [400] + [200] * 4
    labels = [body_of(r)["outputs"][0]["data"] for r in got[:4] + got[5:]]
    assert labels == [[y] for y in classifier.expected]
    assert value(app, "sluice_serving_input_feature_count", feature="0") == 8
    ones = sum(1 for y in classifier.expected if y == 1)
    assert value(app, "sluice_serving_predicted_class_total", **{"class": "1"}) == ones


def test_injected_latency_delays_each_request_and_the_late_ones_still_share_a_call(classifier: ModelFiles) -> None:
    app = make_app(classifier, SLUICE_MAX_BATCH_SIZE="16", SLUICE_FAULT_LATENCY="0.01")
    inner = Recording()
    app.set_model(inner)
    got = asyncio.run(replies(app, [infer_body(tensor([float(i), 1.0], [1, 2])) for i in range(4)]))
    assert [r.status for r in got] == [200] * 4
    assert [body_of(r)["outputs"][0]["data"] for r in got] == [[1.0], [2.0], [3.0], [4.0]]
    assert inner.calls == [4]
