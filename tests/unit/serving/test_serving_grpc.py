"""The gRPC API's service in process: typed contents for every datatype that has a field, readiness before the
model is loaded, errors as status codes with the REST path's messages, and the `protocol` label."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest

from sluice_serving.app import App
from sluice_serving.binary import encode_raw
from sluice_serving.config import Config
from sluice_serving.grpc_api import InferenceService, parameters
from sluice_serving.metrics import Metrics
from sluice_serving.oip import grpc_predict_v2_pb2 as pb
from unit.serving.datatypes import ECHO_DATATYPES, NUMPY_OF
from unit.serving.support import ModelFiles, make_echo_model
from unit.serving.test_serving_app import make_app, value

T = TypeVar("T")
_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class Context:
    """What the service uses of grpc's context: `abort` raises, as grpc's does."""

    def __init__(self) -> None:
        self.trailing: Any = ()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata


def run(call: Awaitable[T]) -> T:
    async def wait() -> T:
        return await call

    return asyncio.run(wait())


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_echo_model(tmp_path_factory.mktemp("models"), ECHO_DATATYPES)


def values(datatype: str) -> list[Any]:
    if datatype == "BYTES":
        return [b"a", "é".encode(), b"", b"d"]
    if datatype == "BOOL":
        return [True, False, False, True]
    return [1, 2, 3, 4]


def typed_request(datatypes: tuple[str, ...] = ECHO_DATATYPES) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="model", id="g")
    for datatype in datatypes:
        tensor = request.inputs.add(name=datatype.lower(), datatype=datatype, shape=[2, 2])
        if datatype == "FP16":
            continue
        getattr(tensor.contents, _FIELDS[datatype]).extend(values(datatype))
    return request


def test_typed_contents_of_every_datatype_with_a_field_are_answered_as_raw_contents(tmp_path: Path) -> None:
    typed = tuple(d for d in ECHO_DATATYPES if d != "FP16")  # FP16 has no field: it is sent as raw contents only
    service = InferenceService(make_app(make_echo_model(tmp_path, typed), "onnx"))
    response = run(service.model_infer(typed_request(typed), Context()))
    for datatype, output, raw in zip(typed, response.outputs, response.raw_output_contents, strict=True):
        assert output.datatype == datatype
        array = np.array(values(datatype), dtype=object if datatype == "BYTES" else NUMPY_OF[datatype])
        assert raw == encode_raw(array), datatype


def test_fp16_in_typed_contents_is_refused_with_where_it_goes(echo: Path) -> None:
    request = typed_request()
    request.inputs[1].contents.fp32_contents.extend([1, 2, 3, 4])
    with pytest.raises(AbortedError) as refused:
        run(InferenceService(make_app(echo, "onnx")).model_infer(request, Context()))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "FP16 data goes in raw_input_contents" in refused.value.details


def test_raw_contents_of_every_datatype_are_echoed(echo: Path) -> None:
    service = InferenceService(make_app(echo, "onnx"))
    request = pb.ModelInferRequest(model_name="model", id="g")
    for datatype in ECHO_DATATYPES:
        request.inputs.add(name=datatype.lower(), datatype=datatype, shape=[2, 2])
        array = np.array(values(datatype), dtype=object if datatype == "BYTES" else NUMPY_OF[datatype])
        request.raw_input_contents.append(encode_raw(array))
    response = run(service.model_infer(request, Context()))
    assert response.id == "g"
    assert [o.name for o in response.outputs] == [f"{d.lower()}_out" for d in ECHO_DATATYPES]
    assert list(response.raw_output_contents) == list(request.raw_input_contents)
    assert [list(o.shape) for o in response.outputs] == [[2, 2]] * len(ECHO_DATATYPES)


def test_typed_contents_feed_a_model_like_json_data(classifier: ModelFiles) -> None:
    app = make_app(classifier)
    request = pb.ModelInferRequest(model_name="model")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=list(classifier.rows.shape))
    tensor.contents.fp64_contents.extend(classifier.rows.ravel().tolist())
    request.outputs.add(name="predict")
    response = run(InferenceService(app).model_infer(request, Context()))
    (output,) = response.outputs
    assert output.datatype == "INT64"
    assert np.frombuffer(response.raw_output_contents[0], "<i8").tolist() == classifier.expected
    assert value(app, "sluice_serving_requests_total", code="200", protocol="grpc") == 1
    assert value(app, "sluice_serving_requests_total", code="200", protocol="rest") == 0


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (lambda r: setattr(r, "model_name", "other"), grpc.StatusCode.NOT_FOUND, "unknown model 'other'"),
        (lambda r: setattr(r, "model_version", "9"), grpc.StatusCode.NOT_FOUND, "unknown version '9'"),
        (lambda r: r.inputs[0].contents.fp32_contents.append(1.0), grpc.StatusCode.INVALID_ARGUMENT, "goes in"),
        (lambda r: r.raw_input_contents.extend([b"", b""]), grpc.StatusCode.INVALID_ARGUMENT, "one entry per"),
        (lambda r: r.raw_input_contents.append(b""), grpc.StatusCode.INVALID_ARGUMENT, "exclude each other"),
        (lambda r: r.inputs[0].contents.fp64_contents.__setitem__(0, np.nan), grpc.StatusCode.INVALID_ARGUMENT, "NaN"),
        (lambda r: r.inputs[0].shape.append(-1), grpc.StatusCode.INVALID_ARGUMENT, "non-negative"),
        (lambda r: r.outputs.add(name="nope"), grpc.StatusCode.INVALID_ARGUMENT, "unknown output 'nope'"),
    ],
)
def test_a_refused_request_gets_the_status_code_of_its_http_status(
    classifier: ModelFiles, mutate: Any, code: grpc.StatusCode, message: str
) -> None:
    app = make_app(classifier)
    request = pb.ModelInferRequest(model_name="model")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=list(classifier.rows.shape))
    tensor.contents.fp64_contents.extend(classifier.rows.ravel().tolist())
    mutate(request)
    with pytest.raises(AbortedError) as refused:
        run(InferenceService(app).model_infer(request, Context()))
    assert refused.value.code == code
    assert message in refused.value.details
    status = "404" if code == grpc.StatusCode.NOT_FOUND else "400"
    assert value(app, "sluice_serving_requests_total", code=status, protocol="grpc") == 1


def test_before_the_model_is_loaded_readiness_is_false_and_inference_unavailable(classifier: ModelFiles) -> None:
    cfg = Config.from_env({"MODEL_URI": str(classifier.joblib)})
    service = InferenceService(App(cfg, Metrics(cfg)))
    context = Context()
    assert run(service.server_live(pb.ServerLiveRequest(), context)).live
    assert not run(service.server_ready(pb.ServerReadyRequest(), context)).ready
    assert not run(service.model_ready(pb.ModelReadyRequest(name="model"), context)).ready
    for call in (
        service.model_metadata(pb.ModelMetadataRequest(name="model"), context),
        service.model_infer(pb.ModelInferRequest(model_name="model"), context),
    ):
        with pytest.raises(AbortedError) as refused:
            run(call)
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE


def test_metadata_over_grpc_is_the_rest_metadata(classifier: ModelFiles) -> None:
    service = InferenceService(make_app(classifier))
    server = run(service.server_metadata(pb.ServerMetadataRequest(), Context()))
    assert list(server.extensions) == ["binary_tensor_data"]
    model = run(service.model_metadata(pb.ModelMetadataRequest(name="model", version="7"), Context()))
    assert list(model.versions) == ["7"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input", "FP64", [-1, 20])]
    with pytest.raises(AbortedError) as refused:
        run(service.model_ready(pb.ModelReadyRequest(name="other"), Context()))
    assert refused.value.code == grpc.StatusCode.NOT_FOUND


def test_a_model_that_fails_unexpectedly_is_answered_internal_with_a_fixed_text(classifier: ModelFiles) -> None:
    app = make_app(classifier)
    assert app.model is not None

    def broken(inputs: Any, wanted: Any) -> Any:
        raise RuntimeError("secret path /etc/model")

    app.model.predict = broken  # type: ignore[method-assign]
    request = pb.ModelInferRequest(model_name="model")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[1, 20])
    tensor.contents.fp64_contents.extend([0.0] * 20)
    with pytest.raises(AbortedError) as refused:
        run(InferenceService(app).model_infer(request, Context()))
    assert refused.value.code == grpc.StatusCode.INTERNAL
    assert refused.value.details == "internal error"
    assert value(app, "sluice_serving_requests_total", code="500", protocol="grpc") == 1


def test_parameters_become_json_values() -> None:
    request = pb.ModelInferRequest()
    request.parameters["a"].bool_param = True
    request.parameters["b"].int64_param = 3
    request.parameters["c"].string_param = "x"
    request.parameters["d"].double_param = 0.5
    request.parameters["e"].SetInParent()
    assert parameters(request.parameters) == {"a": True, "b": 3, "c": "x", "d": 0.5}
