"""Issue #14 findings 3, 5, 6 and 8 (server side), one regression test each, against a real sluice-serving
process: what a hostile inference client or model source could do before, and what the server does now."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from integration.serving.conftest import HARDENED_ENV, Serving, Start, free_port
from integration.serving.hostile import (
    LIVE,
    PeakRss,
    connect,
    first_status,
    live_within,
    read_until_closed,
    send,
    statuses,
)
from unit.serving.support import ModelFiles, digest_of

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT = float(HARDENED_ENV["SLUICE_REQUEST_TIMEOUT"])
KEEPALIVE_TIMEOUT = float(HARDENED_ENV["SLUICE_KEEPALIVE_TIMEOUT"])
MAX_CONNECTIONS = int(HARDENED_ENV["SLUICE_MAX_CONNECTIONS"])
INFER = "/v2/models/model/infer"
PREDICT = "/v1/models/model:predict"


@pytest.fixture(scope="module")
def server(hardened_server: Serving) -> Serving:
    return hardened_server


def long_string_bodies() -> dict[str, bytes]:
    """The 210 KB requests of finding 3: one 200,000-character string among 2,499 empty ones (125 rows of 20)."""
    values = ["A" * 200_000] + [""] * 2499
    v1 = {"instances": [values[i : i + 20] for i in range(0, 2500, 20)]}
    v2 = {"inputs": [{"name": "input", "shape": [125, 20], "datatype": "FP64", "data": values}]}
    return {PREDICT: json.dumps(v1).encode(), INFER: json.dumps(v2).encode()}


# -- finding 3: tensors -------------------------------------------------------------------------------------------


def test_a_long_string_among_numbers_is_refused_without_a_wide_array(server: Serving) -> None:
    peak = PeakRss(server.proc.pid)
    before = peak.mib()
    for path, body in long_string_bodies().items():
        assert 200_000 < len(body) < 220_000
        peak.reset()
        response = server.client.post(path, content=body)
        assert response.status_code == 400, response.text
        assert peak.mib() < before + 64, f"{path}: peak RSS {peak.mib():.0f} MiB (was {before:.0f} MiB)"


# -- finding 5: the HTTP layer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v2/health/live?" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 1_000_000 + b"\r\n\r\n", 431),
        (b"GET /v2/health/live HTTP/1.1\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n", 431),
    ],
    ids=["a URL of 1 MB", "a header of 1 MB", "10,000 headers"],
)
def test_a_long_url_or_head_is_refused_and_closed(server: Serving, request_bytes: bytes, status: int) -> None:
    with connect(server.port) as sock:
        send(sock, request_bytes)
        reply, closed = read_until_closed(sock, 5)
    assert first_status(reply) == status
    assert closed


def test_unterminated_headers_hold_no_memory(server: Serving) -> None:
    peak = PeakRss(server.proc.pid)
    before = peak.mib()
    peak.reset()
    socks = [connect(server.port) for _ in range(8)]
    try:
        for sock in socks:
            send(sock, b"GET / HTTP/1.1\r\nX-Big: ")
        for _ in range(32):  # 8 connections x 32 MB offered, never a CRLF
            for sock in socks:
                send(sock, b"v" * (1 << 20))
        assert [first_status(read_until_closed(sock, 5)[0]) for sock in socks] == [431] * 8
    finally:
        for sock in socks:
            sock.close()
    assert peak.mib() < before + 64, f"peak RSS {peak.mib():.0f} MiB (was {before:.0f} MiB)"


def test_a_request_trickled_byte_by_byte_is_closed_at_the_request_deadline(server: Serving) -> None:
    """Slowloris: every byte used to reset the idle timer, so a byte a second kept the connection forever."""
    with connect(server.port) as sock:
        started = time.monotonic()
        send(sock, b"GET /v2/health/live HTTP/1.1\r\nX-Slow: ")
        closed_after = None
        while time.monotonic() - started < 3 * KEEPALIVE_TIMEOUT:
            _, closed = read_until_closed(sock, 1.0)
            if closed or not send(sock, b"a"):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the server kept a trickled request open"
    assert closed_after < REQUEST_TIMEOUT + 1.5
    assert live_within(server.port)


def test_connections_over_the_cap_are_answered_503_and_closed(server: Serving) -> None:
    socks = [connect(server.port) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        send(socks[0], LIVE)
        assert first_status(socks[0].recv(4096)) == 200  # every connection is accepted by now
        refused = [read_until_closed(sock, 0.5) for sock in socks[-5:]]
        assert [(first_status(reply), closed) for reply, closed in refused] == [(503, True)] * 5
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert live_within(server.port)


def test_thousands_of_pipelined_requests_do_not_starve_liveness(server: Serving) -> None:
    with connect(server.port) as sock:
        send(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 5000)
        started = time.monotonic()
        assert live_within(server.port, 1.0)
        assert time.monotonic() - started < 1.0


def test_a_client_that_never_reads_cannot_grow_the_server(server: Serving) -> None:
    peak = PeakRss(server.proc.pid)
    before = peak.mib()
    peak.reset()
    with connect(server.port, timeout=2) as sock:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        deadline = time.monotonic() + 10
        sent = 0
        while sent < 20_000 and time.monotonic() < deadline and send(sock, request * 500):
            sent += 500  # stops when the server stops reading: send() times out
        assert live_within(server.port)
    assert peak.mib() < before + 64, f"peak RSS {peak.mib():.0f} MiB (was {before:.0f} MiB), {sent} sent"


def test_a_413_closes_the_connection_without_reading_the_body(server: Serving) -> None:
    with connect(server.port) as sock:
        send(sock, f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 30}\r\n\r\n".encode())
        send(sock, b"0" * 65536)
        reply, closed = read_until_closed(sock, 2)
    assert first_status(reply) == 413
    assert closed


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (f"POST {INFER} HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {1 << 30}\r\n\r\n", 413),
        ("POST /v2/health/live HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n", 405),
        ("POST /v2/models/other/infer HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n", 404),
    ],
    ids=["too large, Content-Length after Expect", "a route without a body", "another model"],
)
def test_expect_100_continue_is_not_answered_for_a_body_that_would_be_refused(
    server: Serving, head: str, status: int
) -> None:
    with connect(server.port) as sock:
        send(sock, head.encode())
        reply, _ = read_until_closed(sock, 2)
    assert statuses(reply) == [status]


def test_expect_100_continue_is_answered_for_an_inference_body(server: Serving, classifier: ModelFiles) -> None:
    from unit.serving.support import rows_body

    body = rows_body(classifier.rows)
    with connect(server.port) as sock:
        send(sock, f"POST {INFER} HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        interim = sock.recv(4096)
        send(sock, body)
        reply, _ = read_until_closed(sock, 1)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert first_status(reply) == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 200),
        (
            b"GET /v2/health/live HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            200,
        ),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
    ],
    ids=["h2c upgrade", "websocket upgrade then another request", "CONNECT"],
)
def test_an_upgrade_or_connect_gets_exactly_one_response(server: Serving, request_bytes: bytes, status: int) -> None:
    with connect(server.port) as sock:
        send(sock, request_bytes)
        reply, closed = read_until_closed(sock, 2)
    assert statuses(reply) == [status]
    assert closed


# -- finding 6: the model download --------------------------------------------------------------------------------


@pytest.fixture
def model_source(classifier: ModelFiles) -> Iterator[str]:
    """An HTTP server: /drip sends the model a byte every 0.5 s; /ftp redirects to ftp://; /model.onnx is fine."""
    payload = classifier.onnx.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ftp.onnx":
                self.send_response(302)
                self.send_header("Location", "ftp://127.0.0.1:1/model.onnx")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.path != "/drip.onnx":
                self.wfile.write(payload)
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server gave up: expected
                for byte in payload[:120]:  # 60 s at most
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.5)

        def log_message(self, format: str, *args: object) -> None:
            pass

    source = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    source.daemon_threads = True
    threading.Thread(target=source.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{source.server_address[1]}"
    source.shutdown()
    source.server_close()


def test_a_dripping_model_source_fails_the_start_at_the_download_deadline(
    start: Start, model_source: str, classifier: ModelFiles
) -> None:
    env = {"MODEL_URI": f"{model_source}/drip.onnx", "MODEL_DIGEST": digest_of(classifier.onnx),
           "SLUICE_DOWNLOAD_TIMEOUT": "2"}  # fmt: skip
    started = time.monotonic()
    server = start(env)
    try:
        server.proc.wait(timeout=15)
    except Exception:
        raise AssertionError("the download outlived SLUICE_DOWNLOAD_TIMEOUT=2 by more than 13 s") from None
    assert server.proc.returncode == 1
    assert time.monotonic() - started < 10
    assert "SLUICE_DOWNLOAD_TIMEOUT" in server.stderr()


def test_a_model_larger_than_the_cap_fails_the_start(start: Start, classifier: ModelFiles) -> None:
    size = classifier.onnx.stat().st_size
    code, log = start({"MODEL_URI": str(classifier.onnx), "SLUICE_MAX_MODEL_BYTES": str(size - 1)}).wait_exit()
    assert code == 1
    assert "SLUICE_MAX_MODEL_BYTES" in log


def test_a_redirect_to_another_scheme_is_not_followed(start: Start, model_source: str, classifier: ModelFiles) -> None:
    env = {"MODEL_URI": f"{model_source}/ftp.onnx", "MODEL_DIGEST": digest_of(classifier.onnx)}
    code, log = start(env).wait_exit()
    assert code == 1
    assert "redirects from http:// to ftp://" in log


# -- finding 8: supply chain and the metrics port ----------------------------------------------------------------


def test_a_plain_http_model_uri_without_a_digest_is_refused(start: Start, model_source: str) -> None:
    code, log = start({"MODEL_URI": f"{model_source}/model.onnx"}).wait_exit()
    assert code == 2
    assert "MODEL_DIGEST is required for a plain http://" in log


def test_metrics_can_be_served_on_their_own_port(start: Start, classifier: ModelFiles) -> None:
    metrics_port = free_port()
    server = start({"MODEL_URI": str(classifier.onnx), "SLUICE_METRICS_PORT": str(metrics_port)})
    server.wait_ready()
    with httpx.Client(base_url=f"http://127.0.0.1:{metrics_port}", timeout=10) as metrics:
        assert metrics.get("/metrics").status_code == 200
        assert "sluice_serving_requests_total" in metrics.get("/metrics").text
        assert metrics.get("/v2/health/live").status_code == 404
    assert server.client.get("/metrics").status_code == 404
    assert server.client.get("/v2/health/live").status_code == 200
