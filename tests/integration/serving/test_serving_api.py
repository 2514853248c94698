"""The V2/V1 API and /metrics of a real sluice-serving process, over real HTTP."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from integration.serving.conftest import Serving, Start
from unit.serving.support import FEATURES, ModelFiles, infer_body, rows_body, tensor

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"
ROW = [0.5] * FEATURES


def raw_exchange(server: Serving, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_liveness_and_readiness_answer_200(sklearn_server: Serving) -> None:
    assert sklearn_server.client.get("/v2/health/live").json() == {"live": True}
    assert sklearn_server.client.get("/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize("path", ["/v2/models/model/ready", "/v2/models/model/versions/3/ready"])
def test_the_model_is_ready_under_its_name_and_version(sklearn_server: Serving, path: str) -> None:
    response = sklearn_server.client.get(path)
    assert response.status_code == 200
    assert response.json() == {"name": "model", "ready": True}


def test_server_metadata_names_the_server(sklearn_server: Serving) -> None:
    assert sklearn_server.client.get("/v2").json()["name"] == "sluice-serving"


@pytest.mark.parametrize("path", ["/v2/models/model", "/v2/models/model/versions/3"])
def test_model_metadata_lists_inputs_outputs_and_version(sklearn_server: Serving, path: str) -> None:
    doc = sklearn_server.client.get(path).json()
    assert doc["name"] == "model"
    assert doc["versions"] == ["3"]
    assert doc["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, FEATURES]}]
    assert [(o["name"], o["datatype"]) for o in doc["outputs"]] == [("predict", "INT64"), ("predict_proba", "FP64")]


@pytest.mark.parametrize("path", [INFER, "/v2/models/model/versions/3/infer"])
def test_infer_returns_the_predictions_of_the_model(sklearn_server: Serving, classifier: ModelFiles, path: str) -> None:
    response = sklearn_server.client.post(path, content=rows_body(classifier.rows, id="req-1"))
    assert response.status_code == 200
    doc = response.json()
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("model", "3", "req-1")
    assert doc["outputs"][0] == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [len(classifier.rows)],
        "data": classifier.expected,
    }


def test_infer_returns_only_the_requested_outputs(sklearn_server: Serving, classifier: ModelFiles) -> None:
    body = rows_body(classifier.rows, outputs=[{"name": "predict_proba"}])
    outputs = sklearn_server.client.post(INFER, content=body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["predict_proba"]
    assert outputs[0]["shape"] == [len(classifier.rows), 2]


def test_the_v1_predict_form_answers_predictions(sklearn_server: Serving, classifier: ModelFiles) -> None:
    response = sklearn_server.client.post("/v1/models/model:predict", json={"instances": classifier.rows.tolist()})
    assert response.json() == {"predictions": classifier.expected}
    assert sklearn_server.client.get("/v1/models/model").json() == {"name": "model", "ready": True}


def good(**overrides: Any) -> dict[str, Any]:
    return {**tensor(ROW, [1, FEATURES]), **overrides}


BINARY = {"name": "input", "shape": [1, 20], "datatype": "FP64", "parameters": {"binary_data_size": 160}}
BAD_REQUESTS: list[tuple[str, str, bytes, int, str]] = [
    ("invalid JSON", INFER, b'{"inputs": [', 400, "not valid JSON"),
    ("empty body", INFER, b"", 400, "empty"),
    ("a JSON array body", INFER, b"[1, 2]", 400, "JSON object"),
    ("no inputs", INFER, b"{}", 400, "'inputs'"),
    ("empty inputs", INFER, b'{"inputs": []}', 400, "'inputs'"),
    ("an input that is not an object", INFER, b'{"inputs": [1]}', 400, "inputs[0]"),
    ("an input without a name", INFER, infer_body({"shape": [1, 20], "datatype": "FP64", "data": ROW}), 400, "name"),
    ("an unknown input", INFER, infer_body(good(name="x")), 400, "unknown input"),
    ("the same input twice", INFER, infer_body(good(), good()), 400, "given twice"),
    ("a missing shape", INFER, infer_body({"name": "input", "datatype": "FP64", "data": ROW}), 400, "'shape'"),
    ("a negative dimension", INFER, infer_body(good(shape=[-1, FEATURES])), 400, "non-negative"),
    ("a missing datatype", INFER, infer_body({"name": "input", "shape": [1, 20], "data": ROW}), 400, "datatype"),
    ("an unknown datatype", INFER, infer_body(good(datatype="FP8")), 400, "unknown datatype"),
    ("a wrong datatype", INFER, infer_body(good(datatype="BYTES", data=["a"] * FEATURES)), 400, "does not fit"),
    ("a BOOL tensor for a float input", INFER, infer_body(good(datatype="BOOL", data=[True] * 20)), 400, "fit"),
    ("missing data", INFER, infer_body({"name": "input", "shape": [1, 20], "datatype": "FP64"}), 400, "'data'"),
    ("a wrong rank", INFER, infer_body(good(shape=[FEATURES])), 400, "does not match"),
    ("a wrong feature count", INFER, infer_body(good(shape=[1, 19], data=ROW[:19])), 400, "does not match"),
    ("data shorter than the shape", INFER, infer_body(good(shape=[2, FEATURES])), 400, "needs 40"),
    ("strings in a float tensor", INFER, infer_body(good(data=["0.5"] * FEATURES)), 400, "not FP64"),
    ("nulls in a float tensor", INFER, infer_body(good(data=[None] * FEATURES)), 400, "not FP64"),
    ("ragged nested data", INFER, infer_body(good(data=[[0.5] * 20, [0.5]])), 400, "ragged"),
    ("an empty batch", INFER, infer_body(good(shape=[0, FEATURES], data=[])), 400, "no elements"),
    ("NaN, which JSON has no word for", INFER, infer_body(good()).replace(b"0.5", b"NaN", 1), 400, "JSON"),
    ("an unknown output", INFER, infer_body(good(), outputs=[{"name": "x"}]), 400, "unknown output"),
    ("outputs that are not objects", INFER, infer_body(good(), outputs=["predict"]), 400, "'outputs'"),
    ("a non-string id", INFER, infer_body(good(), id=7), 400, "'id'"),
    ("parameters that are not an object", INFER, infer_body(good(), parameters=[1]), 400, "'parameters'"),
    ("binary tensor data without its header length", INFER, infer_body(BINARY), 400, "Inference-Header-Content-Length"),
    ("an unknown model", "/v2/models/other/infer", infer_body(good()), 404, "unknown model"),
    ("an unknown version", "/v2/models/model/versions/9/infer", infer_body(good()), 404, "unknown version"),
    ("an unknown path", "/v2/models/model/explain", infer_body(good()), 404, "no route"),
    ("V1 instances that are ragged", "/v1/models/model:predict", b'{"instances": [[1, 2], [1]]}', 400, "ragged"),
    ("V1 instances of the wrong width", "/v1/models/model:predict", b'{"instances": [[1, 2]]}', 400, "shape"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"), [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_a_bad_request_is_answered_with_a_json_error_that_says_what_is_wrong(
    sklearn_server: Serving, path: str, body: bytes, status: int, message: str
) -> None:
    response = sklearn_server.client.post(path, content=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert sklearn_server.client.get("/v2/health/live").status_code == 200


def test_a_wrong_method_is_answered_405(sklearn_server: Serving) -> None:
    response = sklearn_server.client.get(INFER)
    assert response.status_code == 405
    assert "POST" in response.json()["error"]


def test_an_oversized_body_is_answered_413(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.joblib), "MODEL_DIGEST": classifier.digest,
                    "SLUICE_MAX_BODY_BYTES": "1000"})  # fmt: skip
    server.wait_ready()
    body = infer_body(tensor([0.123456789] * 200, [10, FEATURES]))
    response = server.client.post(INFER, content=body)
    assert response.status_code == 413
    assert "SLUICE_MAX_BODY_BYTES" in response.json()["error"]

    def chunks() -> Any:
        yield body[:500]
        yield body[500:]

    chunked = server.client.post(INFER, content=chunks())
    assert chunked.status_code == 413
    assert server.client.post(INFER, content=infer_body(good())).status_code == 200


def test_malformed_http_is_answered_400_and_the_connection_closed(sklearn_server: Serving) -> None:
    reply = raw_exchange(sklearn_server, b"GARBAGE / HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"malformed HTTP request" in reply


def test_expect_100_continue_gets_an_interim_response(sklearn_server: Serving) -> None:
    body = infer_body(good())
    head = (f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", sklearn_server.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK")


def test_pipelined_requests_are_answered_in_order(sklearn_server: Serving) -> None:
    one = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /v2/models/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw_exchange(sklearn_server, one + one + last)
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert reply.index(b"HTTP/1.1 404") > reply.rindex(b"HTTP/1.1 200 OK")


def metric_samples(server: Serving) -> list[tuple[str, dict[str, str], float]]:
    response = server.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [
        (s.name, s.labels, s.value) for family in text_string_to_metric_families(response.text) for s in family.samples
    ]


def test_metrics_report_requests_latency_load_time_predictions_and_features(
    sklearn_server: Serving, classifier: ModelFiles
) -> None:
    client = sklearn_server.client
    before = {(n, json.dumps(ls, sort_keys=True)): v for n, ls, v in metric_samples(sklearn_server)}
    client.post(INFER, content=rows_body(classifier.rows))
    client.post(INFER, content=b"{")
    after = metric_samples(sklearn_server)
    base = {"model": "model", "version": "3", "track": "canary"}

    def delta(name: str, **labels: str) -> float:
        want = {**base, **labels}
        [(ls, v)] = [(ls, v) for n, ls, v in after if n == name and ls == want]
        return v - before.get((name, json.dumps(ls, sort_keys=True)), 0.0)

    assert delta("sluice_serving_requests_total", endpoint="infer", protocol="rest", code="200") == 1
    assert delta("sluice_serving_requests_total", endpoint="infer", protocol="rest", code="400") == 1
    assert delta("sluice_serving_request_duration_seconds_count", endpoint="infer", protocol="rest") == 2
    assert delta("sluice_serving_request_duration_seconds_bucket", endpoint="infer", protocol="rest", le="+Inf") == 2
    assert delta("sluice_serving_predicted_class_total", **{"class": "1"}) == classifier.expected.count(1)
    assert delta("sluice_serving_input_feature_count", feature="19") == len(classifier.rows)
    names = {n for n, _, _ in after}
    assert {"sluice_serving_requests_in_flight", "sluice_serving_model_load_duration_seconds"} <= names
    buckets = {ls["le"] for n, ls, _ in after if n == "sluice_serving_request_duration_seconds_bucket"}
    assert {"0.0001", "0.001", "1.0", "10.0", "+Inf"} <= buckets
    load = [v for n, ls, v in after if n == "sluice_serving_model_load_duration_seconds"]
    assert load[0] > 0
