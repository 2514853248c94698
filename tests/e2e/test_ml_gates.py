"""The ML gates before any live weight, end to end (issue #9): the shadow (mirror) phase and the validation gate.

Same substrate as test_canary_rollouts: the real control plane (kwok pods), the real `sluice-operator` subprocess
with the documented RBAC (configmaps `get` included) behind the counting proxy, real `sluice-serving` processes
for the pods, the real Prometheus, and a load generator routing by the HTTPRoute and honouring its
RequestMirror filter (copies to the canary, answers discarded). The route's Gateway `public` is of a GatewayClass
whose status the harness writes as listing HTTPRouteRequestMirror (`harness.gateway_standin`): the operator mirrors
only through such Gateways. The operator reaches canary Services through
`harness.dataplane.ServiceFront` (its `canary_url_template` setting), as it would reach `<name>-canary.<ns>.svc`.

Models: stable is `make_classifier`'s; "equivalent" is the same artifact under a new version; "flipped" is
trained on the same data with every label flipped, so it disagrees with stable on nearly every row and scores
about 1 - accuracy on the labelled dataset (stable's training data).

Scenarios: a flipped canary in shadow is rolled back on agreement and never gets live weight; an equivalent
canary passes the validation gate (dataset at a file:// URI) and the shadow phase and is promoted; the gate
(dataset in a ConfigMap) stops the flipped model under `accuracy >= 0.85` before any traffic, and records its
score.

Hostile specs (issue #14): the operator runs with the models' directory as its dataset directory and one dataset
host, a loopback server offering an endless dataset. A ConfigMap dataset full of credentials, a spec naming a file
of the operator's or a foreign Prometheus, and the endless dataset leave no byte of what was read in status,
Events or the operator's log, and the operator's memory stays bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from e2e.support import Deployed
from harness import ControlPlane, Prometheus
from harness.dataplane import DataPlane, LoadGenerator, ServiceFront
from integration.operator_support import CountingProxy, OperatorProcess, start_least_privileged_operator
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from unit.serving.support import (
    ModelFiles,
    classification_dataset_csv,
    make_classifier,
    make_flipped_classifier,
    rows_body,
)

pytestmark = pytest.mark.e2e

INTERVAL_SECONDS = 3
STEPS = [50]
TIMEOUT = 90.0
RATE = 30.0
MIN_AGREEMENT = 0.9
MIN_ACCURACY = 0.85


@dataclass(frozen=True)
class Models:
    stable: ModelFiles
    flipped: ModelFiles
    dataset: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    directory = tmp_path_factory.mktemp("models")
    dataset = directory / "holdout.csv"
    dataset.write_text(classification_dataset_csv())
    return Models(make_classifier(directory), make_flipped_classifier(directory), dataset)


SECRET = "db_password=hunter2"
ENDLESS_OFFER = 256 * 1024 * 1024
"""What the endless dataset host offers: far more than the operator's 16 MiB cap."""


class EndlessDataset:
    """A loopback HTTP server answering every GET with ENDLESS_OFFER bytes of credential-looking CSV lines,
    counting the bytes the reader accepted."""

    def __init__(self) -> None:
        self.sent = 0
        endless = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                block = (SECRET + ",api_key=AKIAXXXX\n").encode() * 4096
                endless.sent = 0
                try:
                    while endless.sent < ENDLESS_OFFER:
                        self.wfile.write(block)
                        endless.sent += len(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def endless() -> Iterator[EndlessDataset]:
    server = EndlessDataset()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def operator(  # noqa: PLR0917 (pytest fixtures)
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    proxy: CountingProxy,
    prometheus: Prometheus,
    front: ServiceFront,
    models: Models,
    endless: EndlessDataset,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    settings = {
        "SLUICE_RESYNC_SECONDS": "2",
        "SLUICE_PROMETHEUS_URL": prometheus.url,
        "SLUICE_PROMETHEUS_TIMEOUT": "3",
        "SLUICE_CANARY_URL_TEMPLATE": front.url_template,
        "SLUICE_DATASET_DIR": str(models.dataset.parent),
        "SLUICE_DATASET_HOSTS": endless.host,
    }
    workdir = tmp_path_factory.mktemp("operator")
    process = start_least_privileged_operator(control_plane, kube_api_client, proxy, workdir, settings)
    yield process
    process.stop()


@dataclass
class Gates(Deployed):
    """One ModelDeployment rolled out with STEPS every INTERVAL_SECONDS, its versions serving `models`."""

    models: Models

    def create(self, *, shadow: dict[str, Any] | None = None, validation: dict[str, Any] | None = None) -> None:
        rollout: dict[str, Any] = {"steps": STEPS, "interval": f"{INTERVAL_SECONDS}s", "progressDeadline": "2m"}
        if shadow is not None:
            rollout["shadow"] = shadow
        spec: dict[str, Any] = {
            "model": self.model("1.0.0", self.models.stable),
            "replicas": 1,
            "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
            "rollout": rollout,
            "analysis": {
                "minRequests": 10,
                "maxInconclusiveChecks": 3,
                "onInconclusive": "Hold",
                "maxConsecutiveErrors": 10,
            },
        }
        if validation is not None:
            spec["validation"] = validation
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": self.name}}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body | {"spec": spec})
        self.wait(
            lambda: (
                self.status().get("phase") == "Stable" and self.dataplane.ready_versions()[("1.0.0", "stable")] >= 1
            ),
            "1.0.0 Stable with a ready serving process",
            TIMEOUT,
        )

    @staticmethod
    def model(version: str, files: ModelFiles) -> dict[str, Any]:
        return {"version": version, "uri": files.onnx.as_uri(), "format": "onnx"}

    def roll_out(self, version: str, files: ModelFiles) -> None:
        patch = {"spec": {"model": self.model(version, files)}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, patch)

    def follow(self, until: Callable[[dict[str, Any]], bool], what: str) -> list[tuple[str, int]]:
        """Poll the status every 0.2 s until `until(status)`; the (phase, canary weight) pairs seen, in order."""
        seen: list[tuple[str, int]] = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            status = self.status()
            now = (str(status.get("phase")), int(status.get("canaryWeight", 0)))
            if not seen or seen[-1] != now:
                seen.append(now)
            if until(status):
                return seen
            if time.monotonic() > deadline or not self.operator.is_running():
                raise AssertionError(f"timed out waiting for {what}; seen {seen}\n{self.diagnostics()}")
            time.sleep(0.2)


@pytest.fixture
def gates(  # noqa: PLR0917 (pytest fixtures)
    operator: OperatorProcess,
    kube_api_client: ApiClient,
    prometheus: Prometheus,
    front: ServiceFront,
    restricted_namespace: str,
    models: Models,
    tmp_path: Path,
) -> Iterator[Gates]:
    with DataPlane(kube_api_client, prometheus, restricted_namespace, tmp_path / "dataplane") as plane:
        front.add(plane)
        yield Gates(kube_api_client, restricted_namespace, operator, plane, models)


def load(gates: Gates) -> LoadGenerator:
    body = rows_body(gates.models.stable.rows, "FP32")  # 8 rows per request, 8 comparisons
    return LoadGenerator(gates.dataplane, gates.name, body, rate=RATE, duration=TIMEOUT + 60)


def ended(outcome: str) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        history = status.get("history") or []
        return bool(history) and history[-1]["outcome"] == outcome and status.get("phase") in ("Stable", "RolledBack")

    return check


def test_a_canary_disagreeing_in_shadow_is_rolled_back_without_ever_getting_live_weight(gates: Gates) -> None:
    gates.create(shadow={"percent": 100, "checks": 2, "minComparisons": 40, "minAgreement": MIN_AGREEMENT})
    with load(gates) as generator:
        started = time.monotonic()
        gates.roll_out("2.0.0-flipped", gates.models.flipped)
        seen = gates.follow(ended("RolledBack"), "the flipped canary rolled back")
    print(f"shadow: flipped canary applied to rolled back in {time.monotonic() - started:.1f} s")
    status = gates.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0-flipped", "ShadowAnalysisFailed"), entry
    assert "below shadow.minAgreement" in entry["message"], entry
    assert ("Shadowing", 0) in seen, seen
    assert all(weight == 0 for _, weight in seen), f"the canary never had live weight: {seen}"
    agreement = next(m for m in status["lastCheck"]["metrics"] if m["name"] == "shadowAgreement")
    assert agreement["value"] < MIN_AGREEMENT, agreement
    mirrored, served = generator.stats.mirrored, generator.stats.by_version
    assert mirrored[("2.0.0-flipped", 200)] > 0, f"the canary got mirrored copies: {mirrored}"
    assert not [key for key in served if key[0] != "1.0.0"], f"users were answered by stable only: {served}"
    assert not [key for key in served if key[1] != 200], served
    assert status["stableVersion"] == "1.0.0"


def test_an_equivalent_canary_passes_the_validation_gate_and_the_shadow_phase_and_is_promoted(gates: Gates) -> None:
    gates.create(
        shadow={"percent": 50, "checks": 1, "minComparisons": 40, "minAgreement": MIN_AGREEMENT},
        validation={"uri": gates.models.dataset.as_uri(), "metric": "accuracy", "min": MIN_ACCURACY},
    )
    with load(gates) as generator:
        started = time.monotonic()
        gates.roll_out("2.0.0", gates.models.stable)
        seen = gates.follow(ended("Promoted"), "the equivalent canary promoted")
    print(f"gates passed: equivalent canary applied to promoted in {time.monotonic() - started:.1f} s")
    status = gates.status()
    phases = [phase for phase, _ in seen if phase != "Promoting"]
    assert phases == ["Stable", "Validating", "Shadowing", "Progressing", "Stable"], seen
    assert all(weight == 0 for phase, weight in seen if phase in ("Validating", "Shadowing")), seen
    assert max(weight for _, weight in seen) == STEPS[-1], seen
    validation = status["validation"]
    assert (validation["passed"], validation["version"], validation["samples"]) == (True, "2.0.0", 300), validation
    assert validation["score"] >= MIN_ACCURACY, validation
    assert status["stableVersion"] == "2.0.0"
    assert generator.stats.mirrored[("2.0.0", 200)] > 0, generator.stats.mirrored


def test_the_validation_gate_stops_a_model_under_the_accuracy_bound_before_any_traffic(gates: Gates) -> None:
    core = client.CoreV1Api(gates.api_client)
    data = {"holdout.csv": gates.models.dataset.read_text()}
    config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="holdout"), data=data)
    core.create_namespaced_config_map(gates.namespace, config_map)
    gates.create(
        shadow={"percent": 100, "checks": 1, "minAgreement": MIN_AGREEMENT},
        validation={"configMapRef": {"name": "holdout", "key": "holdout.csv"}, "min": MIN_ACCURACY},
    )
    with load(gates) as generator:
        started = time.monotonic()
        gates.roll_out("2.0.0-flipped", gates.models.flipped)
        seen = gates.follow(ended("RolledBack"), "the flipped canary stopped at the gate")
    print(f"validation gate: flipped canary applied to rolled back in {time.monotonic() - started:.1f} s")
    status = gates.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0-flipped", "ValidationFailed"), entry
    assert f"accuracy >= {MIN_ACCURACY:g}" in entry["message"], entry
    validation = status["validation"]
    assert (validation["passed"], validation["version"], validation["samples"]) == (False, "2.0.0-flipped", 300)
    assert validation["score"] < MIN_ACCURACY, validation
    assert "Shadowing" not in [phase for phase, _ in seen], f"never shadowed: {seen}"
    assert all(weight == 0 for _, weight in seen), seen
    assert not [key for key in generator.stats.by_version if key[0] != "1.0.0"], generator.stats.by_version
    assert not generator.stats.mirrored, f"no request was mirrored to it: {generator.stats.mirrored}"
    print(f"validation gate: {validation['message']}")


def leaked(gates: Gates, *secrets: str) -> list[str]:
    """Where any of `secrets` shows: the ModelDeployment's status, the namespace's Events, the operator's log."""
    events = client.CoreV1Api(gates.api_client).list_namespaced_event(gates.namespace).items
    places = {
        "status": json.dumps(gates.status()),
        "events": json.dumps([(event.reason, event.message) for event in events]),
        "operator log": gates.operator.log_path.read_text(),
    }
    return [place for place, text in places.items() for secret in secrets if secret in text]


def peak_rss_bytes(operator: OperatorProcess) -> int:
    assert operator.record is not None
    status = Path(f"/proc/{operator.record.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def test_a_configmap_dataset_of_credentials_never_reaches_status_events_or_logs(gates: Gates) -> None:
    core = client.CoreV1Api(gates.api_client)
    data = {"creds.csv": f"{SECRET},api_key=AKIAXXXX\n1,2\n"}
    core.create_namespaced_config_map(gates.namespace, client.V1ConfigMap(metadata={"name": "creds"}, data=data))
    gates.create(validation={"configMapRef": {"name": "creds", "key": "creds.csv"}, "min": MIN_ACCURACY})
    gates.roll_out("2.0.0", gates.models.stable)
    gates.wait(lambda: "validation" in gates.status(), "the validation gate's run recorded")
    message = gates.status()["validation"]["message"]
    assert message == "validation could not run: none of the CSV header's 2 columns is the label column 'label'"
    assert leaked(gates, "hunter2", "AKIA") == []


def test_a_spec_naming_an_operator_file_or_a_foreign_prometheus_is_invalid_and_nothing_is_read(
    gates: Gates, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(f"{SECRET}\n")
    gates.create()
    patch = {
        "spec": {
            "model": gates.model("2.0.0", gates.models.stable),
            "validation": {"uri": token.as_uri(), "min": MIN_ACCURACY},
            "analysis": {"prometheus": {"url": "http://169.254.169.254/latest/meta-data"}},
        }
    }
    gates.custom.patch_namespaced_custom_object(GROUP, VERSION, gates.namespace, PLURAL, gates.name, patch)

    def ready() -> dict[str, Any]:
        return next((c for c in gates.status().get("conditions", []) if c["type"] == "Ready"), {})

    gates.wait(lambda: ready().get("reason") == "InvalidSpec", "Ready=False, InvalidSpec")
    message = ready()["message"]
    assert "spec.validation.uri: a file:// dataset must lie under the operator's dataset directory" in message
    assert "spec.analysis.prometheus.url is not one of the operator's Prometheus URLs" in message
    assert "validation" not in gates.status(), "no run was attempted"
    assert leaked(gates, "hunter2") == []


def test_an_endless_dataset_is_refused_at_the_cap_and_the_operator_stays_small(
    gates: Gates, endless: EndlessDataset
) -> None:
    gates.create(validation={"uri": f"http://{endless.host}/holdout.csv", "min": MIN_ACCURACY})
    before = peak_rss_bytes(gates.operator)
    gates.roll_out("2.0.0", gates.models.stable)
    gates.wait(lambda: "validation" in gates.status(), "the validation gate's run recorded")
    assert (
        gates.status()["validation"]["message"] == "validation could not run: the dataset is larger than 16777216 bytes"
    )
    growth = peak_rss_bytes(gates.operator) - before
    print(f"endless dataset: the operator accepted {endless.sent} bytes; its peak RSS grew by {growth} bytes")
    assert endless.sent < ENDLESS_OFFER / 4, f"the operator stopped reading near its cap, not at {endless.sent}"
    assert growth < 96 * 1024 * 1024, f"the operator's peak RSS grew by {growth} bytes"
    assert leaked(gates, "hunter2", "AKIA") == []
