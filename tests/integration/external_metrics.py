"""A stand-in external metrics API (external.metrics.k8s.io/v1beta1) for the harness's HPA controller.

`ExternalMetrics` serves every external metric at one value the test sets (`value`), over HTTPS on 127.0.0.1
(the control plane's serving certificate); `API.register` makes the kube-apiserver's aggregator route the group to
it (`harness.aggregation`). The kube-controller-manager's HPA controller then reads External metrics from it as
from a metrics adapter.
"""

from __future__ import annotations

import json
import ssl
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.aggregation import AggregatedApi

API = AggregatedApi("external.metrics.k8s.io", "v1beta1", "external-metrics")
GROUP_VERSION = f"{API.group}/{API.version}"


class ExternalMetrics:
    """Every external metric of every namespace at `value` (a quantity, as a string)."""

    def __init__(self, cert: Path, key: Path, value: str = "0") -> None:
        self.value = value
        self.reads = 0
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                metrics.answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="external-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ExternalMetrics:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0].rstrip("/")
        parts = path.removeprefix(f"/apis/{GROUP_VERSION}").strip("/").split("/")
        if path == f"/apis/{GROUP_VERSION}":
            body: dict[str, Any] = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
                                    "resources": []}  # fmt: skip
        elif path.startswith(f"/apis/{GROUP_VERSION}/namespaces/") and len(parts) == 3:
            self.reads += 1
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            item = {"metricName": parts[2], "metricLabels": {}, "timestamp": stamp, "value": self.value}
            body = {"kind": "ExternalMetricValueList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": [item]}
        else:
            request.send_response(404)
            request.end_headers()
            return
        data = json.dumps(body).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
