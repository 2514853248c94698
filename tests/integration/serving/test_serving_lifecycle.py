"""Start-up, model loading and refusal, fault injection and graceful shutdown of real processes."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from integration.serving.conftest import Serving, Start
from unit.serving.support import ModelFiles, digest_of, rows_body

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"


def metric(server: Serving, name: str, **labels: str) -> float:
    text = server.client.get("/metrics").text
    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_help_lists_the_environment_and_exits_0() -> None:
    command = [sys.executable, "-m", "sluice_serving", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for name in ("MODEL_URI", "MODEL_DIGEST", "SLUICE_TRACK", "SLUICE_FAULT_ERROR_RATE", "/v2/health/ready"):
        assert name in result.stdout


def test_a_bad_configuration_exits_2_naming_the_variable() -> None:
    env = {"PATH": "/usr/bin", "MODEL_URI": "/m.onnx", "SLUICE_TRACK": "purple"}
    command = [sys.executable, "-m", "sluice_serving"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "SLUICE_TRACK" in result.stderr


def test_a_digest_mismatch_is_refused_and_the_process_exits_1(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.joblib), "MODEL_DIGEST": "sha256:" + "0" * 64})
    code, log = server.wait_exit()
    assert code == 1
    assert "digest mismatch" in log
    assert "model load failed" in log


def test_a_pickle_without_a_pinned_digest_is_refused(start: Start, classifier: ModelFiles) -> None:
    code, log = start({"MODEL_URI": str(classifier.joblib)}).wait_exit()
    assert code == 1
    assert "MODEL_DIGEST" in log


def test_a_missing_model_file_exits_1_with_a_clear_message(start: Start, tmp_path: Path) -> None:
    code, log = start({"MODEL_URI": str(tmp_path / "absent.onnx")}).wait_exit()
    assert code == 1
    assert "does not exist" in log


def test_an_onnx_model_is_served_without_a_digest(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": classifier.onnx.as_uri(), "MODEL_FORMAT": "onnx"})
    server.wait_ready()
    response = server.client.post(INFER, content=rows_body(classifier.rows.astype(np.float32), "FP32"))
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == classifier.expected
    assert server.client.get("/v2/models/model").json()["platform"] == "onnxruntime_onnx"


def test_the_server_pins_its_blas_and_openmp_pools_to_sluice_num_threads(start: Start, classifier: ModelFiles) -> None:
    unset = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "")
    env = {"MODEL_URI": str(classifier.joblib), "MODEL_DIGEST": classifier.digest, "SLUICE_NUM_THREADS": "3"}
    server = start({**env, **unset})
    server.wait_ready()
    ready = [json.loads(line) for line in server.stderr().splitlines() if '"model ready"' in line]
    assert ready[0]["threads"] == {"blas": 3, "openmp": 3}  # neither the machine's core count nor a library's own
    assert server.client.post(INFER, content=rows_body(classifier.rows, "FP64")).status_code == 200


@pytest.fixture
def gated_model(classifier: ModelFiles) -> Iterator[tuple[str, threading.Event]]:
    """An HTTP server that serves the ONNX model only once the returned event is set."""
    gate = threading.Event()
    payload = classifier.onnx.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            gate.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/model.onnx", gate
    gate.set()
    server.shutdown()
    server.server_close()


def test_the_model_is_not_ready_until_it_is_loaded(
    start: Start, gated_model: tuple[str, threading.Event], classifier: ModelFiles
) -> None:
    uri, gate = gated_model
    server = start({"MODEL_URI": uri, "MODEL_DIGEST": digest_of(classifier.onnx)})
    server.wait_listening()
    assert server.client.get("/v2/health/ready").status_code == 503
    assert server.client.get("/v2/models/model/ready").status_code == 503
    assert server.client.post(INFER, content=rows_body(classifier.rows, "FP32")).status_code == 503
    gate.set()
    server.wait_ready()
    assert server.client.post(INFER, content=rows_body(classifier.rows, "FP32")).status_code == 200


def test_injected_errors_answer_500_and_are_counted(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.onnx), "SLUICE_FAULT_ERROR_RATE": "1", "SLUICE_TRACK": "canary"})
    server.wait_ready()
    for _ in range(3):
        response = server.client.post(INFER, content=rows_body(classifier.rows, "FP32"))
        assert response.status_code == 500
        assert "injected fault" in response.json()["error"]
    assert metric(server, "sluice_serving_requests_total", code="500", track="canary") == 3
    assert metric(server, "sluice_serving_requests_total", code="200") == 0


def test_injected_latency_shows_in_the_latency_histogram(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.onnx), "SLUICE_FAULT_LATENCY": "0.3"})
    server.wait_ready()
    assert server.client.post(INFER, content=rows_body(classifier.rows, "FP32")).status_code == 200
    assert metric(server, "sluice_serving_request_duration_seconds_bucket", le="0.25") == 0
    assert metric(server, "sluice_serving_request_duration_seconds_bucket", le="0.5") == 1
    assert metric(server, "sluice_serving_request_duration_seconds_sum") >= 0.3


def test_sigterm_drains_in_flight_requests_then_exits_0(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.onnx), "SLUICE_FAULT_LATENCY": "2"})
    server.wait_ready()
    responses: list[httpx.Response] = []
    body = rows_body(classifier.rows, "FP32")

    def send() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            responses.append(client.post(INFER, content=body))

    sender = threading.Thread(target=send)
    sender.start()
    while metric(server, "sluice_serving_requests_in_flight") < 1:
        time.sleep(0.02)
    server.proc.terminate()
    sender.join(30)
    assert [r.status_code for r in responses] == [200]
    assert responses[0].json()["outputs"][0]["data"] == classifier.expected
    code, log = server.wait_exit()
    assert code == 0
    assert [json.loads(line)["msg"] for line in log.splitlines()][-2:] == ["draining", "stopped"]


def test_a_regressor_reports_a_histogram_of_predicted_values(start: Start, regressor: ModelFiles) -> None:
    server = start({"MODEL_URI": str(regressor.joblib), "MODEL_DIGEST": regressor.digest,
                    "SLUICE_PREDICTION_BUCKETS": "-1000,0,1000"})  # fmt: skip
    server.wait_ready()
    assert server.client.post(INFER, content=rows_body(regressor.rows)).status_code == 200
    negative = sum(1 for v in regressor.expected if v <= 0)
    assert metric(server, "sluice_serving_predictions_bucket", le="0.0") == negative
    assert metric(server, "sluice_serving_predictions_count") == len(regressor.rows)
