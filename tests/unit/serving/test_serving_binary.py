"""The binary tensor data extension over REST, in process: binary inputs and outputs for every datatype, parameters,
and the bounds on what a client declares (header length, binary sizes, element lengths)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice_serving.app import App, Reply
from sluice_serving.binary import decode_raw, encode_raw
from sluice_serving.errors import DEFAULT_STRING_LIMITS, RequestError, StringLimits
from unit.serving.datatypes import ECHO_DATATYPES, NUMPY_OF
from unit.serving.support import make_echo_model, settled
from unit.serving.test_serving_app import make_app

INFER = "/v2/models/model/infer"


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_echo_model(tmp_path_factory.mktemp("models"), ECHO_DATATYPES)


@pytest.fixture
def app(echo: Path) -> App:
    return make_app(echo, "onnx")


def sample(datatype: str) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        return np.array([["a", "é"], ["", "d"]], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    return np.array([[1, 2], [3, 4]], dtype=NUMPY_OF[datatype])


def binary_request(doc: dict[str, Any], chunks: list[bytes]) -> tuple[bytes, bytes]:
    """A body in the extension's layout and its Inference-Header-Content-Length."""
    head = json.dumps(doc).encode()
    return head + b"".join(chunks), str(len(head)).encode()


def every_input(binary_outputs: bool) -> tuple[bytes, bytes]:
    tensors, chunks = [], []
    for datatype in ECHO_DATATYPES:
        data = encode_raw(sample(datatype))
        chunks.append(data)
        tensors.append({"name": datatype.lower(), "datatype": datatype, "shape": [2, 2],
                        "parameters": {"binary_data_size": len(data)}})  # fmt: skip
    return binary_request({"id": "b", "inputs": tensors, "parameters": {"binary_data_output": binary_outputs}}, chunks)


def split_reply(reply: Reply) -> tuple[dict[str, Any], bytes]:
    header = dict(line.split(": ", 1) for line in reply.headers.decode().split("\r\n") if line).get(
        "inference-header-content-length"
    )
    if header is None:
        return json.loads(reply.body), b""
    return json.loads(reply.body[: int(header)]), reply.body[int(header) :]


def test_every_datatype_sent_as_binary_data_comes_back_as_binary_data(app: App) -> None:
    body, length = every_input(binary_outputs=True)
    reply = settled(app.handle("POST", INFER, body, length))
    assert reply.status == 200, reply.body
    assert reply.content_type == b"application/octet-stream"
    doc, rest = split_reply(reply)
    assert doc["id"] == "b"
    for tensor, datatype in zip(doc["outputs"], ECHO_DATATYPES, strict=True):
        size = tensor["parameters"]["binary_data_size"]
        chunk, rest = rest[:size], rest[size:]
        assert chunk == encode_raw(sample(datatype)), datatype
        assert "data" not in tensor
    assert rest == b""


def test_every_datatype_sent_as_binary_data_can_come_back_as_json(app: App) -> None:
    body, length = every_input(binary_outputs=False)
    reply = settled(app.handle("POST", INFER, body, length))
    assert reply.status == 200, reply.body
    doc, rest = split_reply(reply)
    assert rest == b""
    for tensor, datatype in zip(doc["outputs"], ECHO_DATATYPES, strict=True):
        assert tensor["datatype"] == datatype
        assert np.array(tensor["data"]).reshape(2, 2).tolist() == sample(datatype).tolist()


def test_one_output_is_asked_for_as_binary_data_and_the_others_as_json(app: App) -> None:
    body, length = every_input(binary_outputs=False)
    doc = json.loads(body[: int(length)])
    doc["outputs"] = [{"name": "bool_out", "parameters": {"binary_data": True}}, {"name": "fp16_out"}]
    body, length = binary_request(doc, [body[int(length) :]])
    out, rest = split_reply(settled(app.handle("POST", INFER, body, length)))
    assert [o["name"] for o in out["outputs"]] == ["bool_out", "fp16_out"]
    assert rest == b"\x01\x00\x00\x01"
    assert out["outputs"][1]["data"] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize(
    ("length", "message"),
    [
        (b"999999", "between 1 and the body's length"),
        (b"0", "between 1 and the body's length"),
        (b"-3", "decimal number"),
        (b"12abc", "decimal number"),
    ],
)
def test_a_header_length_that_does_not_fit_the_body_is_refused(app: App, length: bytes, message: str) -> None:
    body, _ = every_input(binary_outputs=False)
    reply = settled(app.handle("POST", INFER, body, length))
    assert reply.status == 400
    assert message in json.loads(reply.body)["error"]


@pytest.mark.parametrize(("extra", "message"), [(b"x", "longer than"), (None, "more than the binary data")])
def test_binary_sizes_must_add_up_to_the_binary_data_sent(app: App, extra: bytes | None, message: str) -> None:
    body, length = every_input(binary_outputs=False)
    body = body + extra if extra is not None else body[:-1]
    reply = settled(app.handle("POST", INFER, body, length))
    assert reply.status == 400
    assert message in json.loads(reply.body)["error"]


def test_binary_data_without_the_header_length_is_refused_with_a_hint(app: App) -> None:
    body, length = every_input(binary_outputs=False)
    reply = settled(app.handle("POST", INFER, body[: int(length)]))
    assert reply.status == 400
    assert "Inference-Header-Content-Length" in json.loads(reply.body)["error"]


@pytest.mark.parametrize(
    ("raw", "datatype", "message"),
    [
        (b"\x00" * 7, "FP32", "has 7 bytes"),
        (np.array([np.nan, 1], dtype=np.float32).tobytes(), "FP32", "NaN or infinity"),
        (np.array([np.inf, 1], dtype=np.float16).tobytes(), "FP16", "NaN or infinity"),
        (struct.pack("<I", 5) + b"ab", "BYTES", "longer than the data sent"),
        (struct.pack("<I", 1) + b"\xff" + struct.pack("<I", 0), "BYTES", "not UTF-8"),
        (struct.pack("<I", 0), "BYTES", "fewer than 2"),
        (struct.pack("<I", 0) * 3, "BYTES", "more bytes than 2"),
        (np.array([1, 2**40], dtype=np.int64).tobytes(), "INT64", "out of range for INT32"),
    ],
)
def test_bad_binary_data_is_refused_before_any_model_sees_it(raw: bytes, datatype: str, message: str) -> None:
    target = "INT32" if datatype == "INT64" else datatype
    with pytest.raises(RequestError, match=message):
        decode_raw(raw, datatype, target, 2, "input 'x'", DEFAULT_STRING_LIMITS)


def test_binary_strings_are_bounded_like_json_strings() -> None:
    raw = struct.pack("<I", 5) + b"abcde"
    with pytest.raises(RequestError, match="SLUICE_MAX_STRING_CHARS"):
        decode_raw(raw, "BYTES", "BYTES", 1, "input 'x'", StringLimits(per_string=4, total=100))
    with pytest.raises(RequestError, match="SLUICE_MAX_STRINGS_TOTAL_CHARS"):
        decode_raw(raw * 3, "BYTES", "BYTES", 3, "input 'x'", StringLimits(per_string=10, total=12))


def test_integers_in_binary_data_widen_into_a_float_input() -> None:
    array = decode_raw(np.array([1, 2], dtype="<i8").tobytes(), "INT64", "FP32", 2, "x", DEFAULT_STRING_LIMITS)
    assert array.dtype == np.float32
    assert array.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"parameters": {"a": [1]}}, "strings, numbers or booleans"),
        ({"parameters": "x"}, "must be an object"),
        ({"outputs": [{"name": "fp32_out", "parameters": {"classification": 2}}]}, "classification"),
    ],
)
def test_parameters_must_be_names_to_scalars(app: App, parameters: dict[str, Any], message: str) -> None:
    body, length = every_input(binary_outputs=False)
    doc = {**json.loads(body[: int(length)]), **parameters}
    body, length = binary_request(doc, [body[int(length) :]])
    reply = settled(app.handle("POST", INFER, body, length))
    assert reply.status == 400
    assert message in json.loads(reply.body)["error"]


def test_unknown_scalar_parameters_are_accepted(app: App) -> None:
    body, length = every_input(binary_outputs=False)
    doc = {**json.loads(body[: int(length)]), "parameters": {"priority": 1, "tag": "x", "flag": True, "t": 0.5}}
    body, length = binary_request(doc, [body[int(length) :]])
    assert settled(app.handle("POST", INFER, body, length)).status == 200


def test_server_metadata_lists_the_binary_tensor_data_extension(app: App) -> None:
    doc = json.loads(settled(app.handle("GET", "/v2", b"")).body)
    assert doc["extensions"] == ["binary_tensor_data"]
