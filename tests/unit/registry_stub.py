"""A stand-in MLflow tracking server on loopback (a thread, not a process) whose answers a test sets, to prove the
registry resolvers of the operator (sluice.adapters.registry) and of the model server (sluice_serving.registry)
against hostile answers: huge, malformed, a wrong flavor, artifacts outside the proxy, a redirect."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/0/models/m-1/artifacts"
MLMODEL = b"""artifact_path: mlflow-artifacts:/0/models/m-1/artifacts
flavors:
  lightgbm:
    code: null
    data: model.lgb
    model_class: lightgbm.basic.Booster
    skops_trusted_types:
    - lightgbm.basic.Booster
  python_function:
    data: model.lgb
    loader_module: mlflow.lightgbm
mlflow_version: 3.17.2
"""
MODEL_BYTES = b"tree version=v4 SECRET-TOKEN"


def good_answers() -> dict[str, tuple[int, bytes]]:
    """A registry where m@champion and m/3 name version 3, a LightGBM Booster."""
    version = b'{"model_version": {"name": "m", "version": "3", "status": "READY"}}'
    return {
        "/api/2.0/mlflow/registered-models/alias?name=m&alias=champion": (200, version),
        "/api/2.0/mlflow/model-versions/get?name=m&version=3": (200, version),
        "/api/2.0/mlflow/model-versions/get-download-uri?name=m&version=3": (
            200,
            b'{"artifact_uri": "mlflow-artifacts:/0/models/m-1/artifacts"}',
        ),
        f"{ARTIFACTS}/MLmodel": (200, MLMODEL),
        f"{ARTIFACTS}/model.lgb": (200, MODEL_BYTES),
    }


ALIAS = "/api/2.0/mlflow/registered-models/alias?name=m&alias=champion"
DOWNLOAD = "/api/2.0/mlflow/model-versions/get-download-uri?name=m&version=3"
SECRET = b"SECRET-TOKEN"
"""In every hostile answer: no error text may repeat it."""

HOSTILE: dict[str, tuple[str, tuple[int, bytes], str]] = {
    "huge answer": (ALIAS, (200, b'{"x": "' + SECRET * 8000 + b'"}'), r"answer is larger than 65536 bytes$"),
    "malformed answer": (ALIAS, (200, b"{" + SECRET), r"^the MLflow tracking server's answer is not JSON$"),
    "no version": (
        ALIAS,
        (200, b'{"model_version": {"version": "../SECRET-TOKEN"}}'),
        r"^the MLflow tracking server's answer names no model version$",
    ),
    "artifacts outside the proxy": (
        DOWNLOAD,
        (200, b'{"artifact_uri": "s3://SECRET-TOKEN/m"}'),
        r"^the registered model's artifacts are not served by the tracking server's proxy$",
    ),
    "no flavor served": (
        f"{ARTIFACTS}/MLmodel",
        (200, b"flavors:\n  python_function:\n    loader_module: SECRET-TOKEN\n"),
        r"^the registered model has no flavor sluice serves \(onnx, xgboost, lightgbm, sklearn\)$",
    ),
    "a file outside the model": (
        f"{ARTIFACTS}/MLmodel",
        (200, MLMODEL.replace(b"data: model.lgb", b"data: ../SECRET-TOKEN", 1)),
        r"^the registered model's lightgbm flavor names no artifact file sluice can fetch$",
    ),
    "a pickled lightgbm model": (
        f"{ARTIFACTS}/MLmodel",
        (200, MLMODEL.replace(b"lightgbm.basic.Booster", b"SECRET-TOKEN", 1)),
        r"^the registered model's lightgbm flavor is not a native Booster file$",
    ),
    "huge MLmodel": (f"{ARTIFACTS}/MLmodel", (200, MLMODEL + b"#" * 70000), r"is larger than 65536 bytes$"),
    "server error": (ALIAS, (500, SECRET), r"^the MLflow tracking server answered HTTP 500"),
    "unknown model": (ALIAS, (404, SECRET), r"^the MLflow tracking server has no such registered model"),
}
"""Hostile answers: (the path answered, (status, body), the fixed error text both resolvers give, as a regex)."""


@dataclass
class Stub:
    url: str
    answers: dict[str, tuple[int, bytes]] = field(default_factory=good_answers)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait after the headers, before the body."""


@contextmanager
def stub_registry() -> Iterator[Stub]:
    stub = Stub("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = stub.answers.get(self.path, (404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}'))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **stub.headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            time.sleep(stub.delay)
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
