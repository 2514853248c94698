"""What the world says, end to end on the local control plane with the real operator: the share the canary really
takes, pods that can never start, and an HTTPRoute no Gateway accepted (the harness's Gateway stand-in plays the
Gateway controller: it accepts routes whose Gateway exists, and writes nothing for the others).

Each test is one problem a new user met (issue #22), asserting the fix.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from harness import ControlPlane
from harness.gateway_standin import create_gateway
from harness.tools import find_tools
from integration.operator_support import OperatorProcess, condition, status_of
from integration.sluice_crd import install_crd
from integration.test_plugin import Plugin

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    install_crd(control_plane)
    process = OperatorProcess(
        Path(control_plane.kubeconfig),
        tmp_path_factory.mktemp("world-operator") / "operator.log",
        {"SLUICE_RESYNC_SECONDS": "5", "SLUICE_PROMETHEUS_URL": "http://127.0.0.1:9"},
    ).start()
    yield process
    process.stop()


@pytest.fixture
def plugin(
    control_plane: ControlPlane, kube_api_client: ApiClient, namespace: str, operator: OperatorProcess
) -> Plugin:
    return Plugin(control_plane, kube_api_client, namespace, operator)


def example_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())["spec"]
    return spec


def warning_reasons(api_client: ApiClient, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [str(event.reason) for event in events.items if event.type == "Warning"]


def test_the_minimal_example_at_its_ten_percent_step_shows_the_half_of_the_traffic_its_one_canary_pod_takes(
    plugin: Plugin, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin.create("iris", example_spec("minimal.yaml"))
    plugin.wait("iris", lambda s: s.get("phase") == "Stable", "1.0.0 Stable")
    plugin.patch("iris", {"spec": {"model": {"version": "1.1.0"}}})

    status = status_of(
        plugin.wait("iris", lambda s: s.get("currentStep") == 0 and s.get("actualWeight") == 50, "step 1, actual 50")
    )

    assert (status["canaryWeight"], status["actualWeight"]) == (10, 50)
    code, out, _ = plugin(capsys, "status", "iris")
    assert code == 4
    assert "[##..................] 10% (actual 50%)" in out
    _, listed, _ = plugin(capsys, "list")
    header, row = listed.splitlines()[:2]
    assert row.split()[header.split().index("ACTUAL")] == "50%"
    kubectl = [str(find_tools().binary("kubectl")), "--kubeconfig", plugin.kubeconfig, "-n", plugin.namespace]
    got = subprocess.run([*kubectl, "get", "modeldeployments"], capture_output=True, text=True, check=True).stdout
    header, row = got.splitlines()[:2]
    assert (row.split()[header.split().index("WEIGHT")], row.split()[header.split().index("ACTUAL")]) == ("10", "50")


def test_the_replica_ratio_example_without_its_pvc_ends_stalled_with_the_schedulers_reason_and_watch_exits_1(
    plugin: Plugin, kube_api_client: ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = example_spec("replica-ratio.yaml")
    spec["rollout"] |= {"interval": "5s", "progressDeadline": "15s"}  # the example's 10m, shortened
    plugin.create("recommender", spec)
    blocked = plugin.wait(
        "recommender",
        lambda s: any(c["type"] == "PodsCanStart" and c["status"] == "False" for c in s.get("conditions", [])),
        "PodsCanStart False",
    )
    assert condition(blocked, "PodsCanStart")["reason"] == "Unschedulable"
    assert condition(blocked, "PodsCanStart")["message"].startswith("4 pods cannot start (Unschedulable)")

    code, out, _ = plugin(capsys, "status", "recommender", "--watch", "--timeout", "90s", "--interval", "1s")

    assert code == 1, out[-2000:]
    final = plugin.get("recommender")
    assert status_of(final)["phase"] == "Initializing"
    stalled = condition(final, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ProgressDeadlineExceeded")
    assert stalled["message"].endswith("4 pods cannot start (Unschedulable)")
    assert (condition(final, "Progressing")["status"], condition(final, "Reconciling")["status"]) == ("False", "False")
    assert warning_reasons(kube_api_client, plugin.namespace, "recommender").count("PodsCannotStart") == 1


def route_weights(plugin: Plugin, name: str) -> dict[str, int]:
    route = cast(
        dict[str, Any],
        plugin.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", plugin.namespace, "httproutes", name
        ),
    )
    return {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}


def test_a_route_no_gateway_accepted_holds_the_canary_at_weight_zero_until_the_gateway_exists(
    plugin: Plugin, kube_api_client: ApiClient
) -> None:
    spec = {**example_spec("minimal.yaml"), "traffic": {"gateway": {"parentRefs": [{"name": "edge"}]}}}
    plugin.create("routed", spec)
    plugin.wait(
        "routed",
        lambda s: any(c["type"] == "RouteAccepted" and c["status"] == "False" for c in s.get("conditions", [])),
        "RouteAccepted False once the 30 s grace has passed",
    )
    plugin.patch("routed", {"spec": {"model": {"version": "1.1.0"}}})

    held = plugin.wait(
        "routed",
        lambda s: any(c["type"] == "Progressing" and c["reason"] == "RouteNotAccepted" for c in s["conditions"]),
        "the canary ready, held by the route",
    )
    time.sleep(3)

    assert (status_of(held)["canaryWeight"], status_of(plugin.get("routed")).get("currentStep")) == (0, None)
    assert route_weights(plugin, "routed") == {"routed": 100, "routed-canary": 0}
    assert condition(held, "RouteAccepted")["reason"] == "NoParentStatus"
    assert "RouteNotAccepted" in warning_reasons(kube_api_client, plugin.namespace, "routed")
    create_gateway(kube_api_client, plugin.namespace, "edge")
    plugin.wait("routed", lambda s: s.get("currentStep") == 0, "step 1 once the Gateway accepted the route")
    assert condition(plugin.get("routed"), "RouteAccepted")["status"] == "True"
    assert route_weights(plugin, "routed") == {"routed": 90, "routed-canary": 10}
