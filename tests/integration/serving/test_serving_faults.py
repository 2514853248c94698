"""Injected latency (SLUICE_FAULT_LATENCY) on a real server: late answers do not hold up other connections,
and on one connection the replies of pipelined requests keep the order of the requests."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from integration.serving.conftest import Start
from integration.serving.test_serving_api import raw_exchange
from integration.serving.test_serving_lifecycle import metric
from unit.serving.support import ModelFiles, rows_body

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"
LATENCY = 0.3


def test_late_answers_are_concurrent_across_connections(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.onnx), "SLUICE_FAULT_LATENCY": "3"})
    server.wait_ready()
    body = rows_body(classifier.rows, "FP32")
    codes: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            codes.append(client.post(INFER, content=body).status_code)

    senders = [threading.Thread(target=send) for _ in range(8)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 3
    most = 0.0
    while most < 8 and time.monotonic() < deadline:
        most = max(most, metric(server, "sluice_serving_requests_in_flight"))
    for sender in senders:
        sender.join(30)
    assert codes == [200] * 8
    assert most == 8, "eight late answers must wait at once, not one behind another"


def test_pipelined_replies_keep_request_order_behind_a_late_answer(start: Start, classifier: ModelFiles) -> None:
    server = start({"MODEL_URI": str(classifier.onnx), "SLUICE_FAULT_LATENCY": str(LATENCY)})
    server.wait_ready()
    body = rows_body(classifier.rows, "FP32")
    infer = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    live = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /v2/models/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw_exchange(server, live + infer + live + infer + last)
    answers = [kind_of(response) for response in reply.split(b"HTTP/1.1 ")[1:]]
    assert answers == ["200 live", "200 infer", "200 live", "200 infer", "404"]


def kind_of(response: bytes) -> str:
    """A pipelined response summarised: its status, and which request's answer its body is."""
    status = response[:3].decode()
    if b'{"live":true}' in response:
        return status + " live"
    if b'"model_name"' in response:
        return status + " infer"
    return status
