"""The Open Inference Protocol, REST (with the binary tensor data extension) and gRPC, as other projects' clients
speak it: Triton's and KServe's, against one real server of a model that takes every datatype."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator

import pytest

from integration.serving.conftest import Serving, free_port
from integration.serving.oip_clients import MAX_BODY_BYTES, isolated, kserve_clients, triton_grpc, triton_http
from unit.serving.datatypes import ECHO_DATATYPES
from unit.serving.support import make_echo_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    model = make_echo_model(tmp_path_factory.mktemp("models"), ECHO_DATATYPES)
    grpc_port = free_port()
    env = {"MODEL_URI": str(model), "SLUICE_GRPC_PORT": str(grpc_port), "SLUICE_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    server = Serving(env, tmp_path_factory.mktemp("cache"))
    server.grpc = f"127.0.0.1:{grpc_port}"  # type: ignore[attr-defined]
    server.wait_ready()
    yield server
    assert server.stop() == 0


def test_tritons_http_client_echoes_every_datatype_as_binary_data_and_json_and_meets_the_body_cap(
    echo_server: Serving,
) -> None:
    isolated(triton_http, f"127.0.0.1:{echo_server.port}")


def test_kserves_rest_and_grpc_clients_echo_every_datatype(echo_server: Serving) -> None:
    isolated(kserve_clients, echo_server.base, echo_server.grpc)  # type: ignore[attr-defined]


def test_tritons_grpc_client_echoes_every_datatype_meets_the_body_cap_and_is_counted_as_grpc(
    echo_server: Serving,
) -> None:
    isolated(triton_grpc, echo_server.grpc)  # type: ignore[attr-defined]
    text = echo_server.client.get("/metrics").text
    counts = dict(re.findall(r"sluice_serving_requests_total\{([^}]*)\} ([0-9.]+)", text))
    grpc_ok = next(v for k, v in counts.items() if 'protocol="grpc"' in k and 'code="200"' in k)
    grpc_missing = next(v for k, v in counts.items() if 'protocol="grpc"' in k and 'code="400"' in k)
    assert float(grpc_ok) >= 1
    assert float(grpc_missing) >= 1
    assert 'protocol="rest"' in text
    assert "sluice_serving_request_duration_seconds_count{" in text


def test_bytes_that_are_not_grpc_close_their_connection_and_nothing_else(echo_server: Serving) -> None:
    host, port = echo_server.grpc.rsplit(":", 1)  # type: ignore[attr-defined]
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", preface + b"\x00\xff\xff\xff" * 64, os.urandom(4096)):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(junk)
            sock.settimeout(10)
            while sock.recv(65536):  # the server answers what it can, then closes
                pass
    isolated(triton_grpc, echo_server.grpc)  # type: ignore[attr-defined]
    assert echo_server.proc.poll() is None
