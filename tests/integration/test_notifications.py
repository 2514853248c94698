"""Rollout notifications end to end: the operator, running as the chart's ServiceAccount (which may `get` the one
notification Secret and no other), reads a receiver's URL from that Secret and posts every event of a promotion and
of a rollback to a webhook the test runs on loopback, in order and exactly once, although the webhook fails its
first two deliveries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness import wait_until
from integration.chart_identity import ChartInstall
from integration.operator_support import OperatorProcess, condition, status_of
from integration.test_reconcile import ModelDeployments, model
from sluice.api.v1alpha1 import ACTION_ANNOTATION, ACTION_ID_ANNOTATION
from unit.chart.chart_support import NOTIFICATION_SECRET

pytestmark = pytest.mark.integration

FAILURES = 2
"""The webhook answers its first requests with HTTP 500."""


class Webhook:
    """A loopback webhook: fails the first FAILURES requests, then records and accepts every CloudEvent."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self._lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with webhook._lock:
                    webhook.requests += 1
                    failing = webhook.requests <= FAILURES
                    if not failing:
                        webhook.accepted.append(json.loads(body))
                self.send_response(500 if failing else 202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/team"

    def events(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(event["type"].rsplit(".", 1)[1], event["data"]["version"]) for event in self.accepted]

    @contextmanager
    def serving(self) -> Iterator[Webhook]:
        thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


EXPECTED = [
    ("started", "2.0.0"),
    ("paused", "2.0.0"),
    ("steppassed", "2.0.0"),
    ("promoted", "2.0.0"),
    ("started", "3.0.0"),
    ("rolledback", "3.0.0"),
]


def test_a_webhook_failing_its_first_two_deliveries_gets_a_promotion_and_a_rollback_in_order_exactly_once(
    chart_install: ChartInstall,
    operator_kubeconfig: Path,
    kube_api_client: ApiClient,
    restricted_namespace: str,
    tmp_path: Path,
) -> None:
    webhook = Webhook()
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name=NOTIFICATION_SECRET), string_data={"team": webhook.url})
    client.CoreV1Api(kube_api_client).create_namespaced_secret(chart_install.namespace, secret)
    settings = {
        **chart_install.operator_env(),
        "SLUICE_PROMETHEUS_URL": "http://127.0.0.1:9",  # refused: every check is Errored, so 3.0.0 is rolled back
        "SLUICE_NOTIFICATION_BACKOFF_SECONDS": "0.2",
        "SLUICE_METRICS_PORT": "0",
        "SLUICE_LIVENESS_ENDPOINT": "",
        "SLUICE_READINESS_ENDPOINT": "",
    }
    operator = OperatorProcess(operator_kubeconfig, tmp_path / "operator.log", settings)
    with webhook.serving():
        operator.start()
        try:
            log = promote_then_roll_back(ModelDeployments(kube_api_client, restricted_namespace, operator), webhook)
        finally:
            operator.stop()
        md = ModelDeployments(kube_api_client, restricted_namespace, operator)

    assert webhook.events() == EXPECTED, log
    assert webhook.requests == len(EXPECTED) + FAILURES
    assert len({event["id"] for event in webhook.accepted}) == len(EXPECTED)
    assert {event["specversion"] for event in webhook.accepted} == {"1.0"}
    rolled_back = webhook.accepted[-1]["data"]
    assert rolled_back["checks"]
    assert {check["verdict"] for check in rolled_back["checks"]} == {"Errored"}
    notified = condition(md.get("iris"), "Notified")
    assert (notified["status"], notified["reason"]) == ("True", "Delivering")
    assert webhook.url not in log


def promote_then_roll_back(md: ModelDeployments, webhook: Webhook) -> str:
    """2.0.0 started, paused, resumed, promoted by hand; 3.0.0 started and rolled back; the operator's log."""
    rollout = {"steps": [50], "interval": "10m", "progressDeadline": "10m"}
    spec = {"model": model(), "rollout": rollout, "analysis": {"maxConsecutiveErrors": 1}}
    md.create("iris", {**spec, "notifications": {"receivers": ["team"]}})
    md.wait_ready("iris", 1)

    def phase() -> str:
        return str(status_of(md.get("iris")).get("phase"))

    md.patch("iris", {"spec": {"model": model("2.0.0")}})
    md.wait(lambda: status_of(md.get("iris")).get("currentStep") == 0, "2.0.0 at its first step")
    md.patch("iris", {"spec": {"paused": True}})
    md.wait(lambda: phase() == "Paused", "the pause")
    md.patch("iris", {"spec": {"paused": False}})
    md.wait(lambda: phase() == "Progressing", "the resume")
    md.patch("iris", {"metadata": {"annotations": {ACTION_ANNOTATION: "promote", ACTION_ID_ANNOTATION: "n-1"}}})
    md.wait(lambda: status_of(md.get("iris")).get("stableVersion") == "2.0.0", "the promotion of 2.0.0")
    md.wait(lambda: phase() == "Stable", "Stable at 2.0.0")
    md.patch("iris", {"spec": {"model": model("3.0.0"), "rollout": {**rollout, "interval": "2s"}}})
    md.wait(lambda: phase() == "RolledBack", "the rollback of 3.0.0")

    wait_until(lambda: len(webhook.accepted) >= len(EXPECTED), timeout=30, what="every event delivered")
    md.wait(lambda: (status_of(md.get("iris")).get("notifications") or {}).get("delivered") == 6, "the count")
    return md.operator.log_tail(400)
