"""Deletion: sluice sets no finalizers (docs/operations.md); every child carries a controller ownerReference to its
ModelDeployment, so the real kube-controller-manager's garbage collector removes them.

- Deleting a ModelDeployment mid-rollout (canary at its first step) removes both Deployments, both Services and
  the HTTPRoute, and the operator keeps running.
- Deleting it while the operator is down completes without the operator (nothing waits on it); the restarted
  operator neither recreates anything nor crashes.
- Deleting the namespace mid-rollout finishes (no finalizer blocks it) while the operator runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness import ControlPlane, Prometheus, create_namespace, unique_name, wait_until
from harness.gateway_standin import create_gateway
from integration.operator_support import OperatorProcess
from integration.sluice_crd import install_crd
from reliability.support import Rollouts, SyntheticTraffic
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.e2e

TIMEOUT = 90.0
QUIET_SECONDS = 6.0


def spec(version: str) -> dict[str, Any]:
    return {
        "model": {"version": version, "uri": "https://models.example.com/iris/model.onnx", "format": "onnx"},
        "replicas": 1,
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "rollout": {"steps": [25, 50], "interval": "1h", "progressDeadline": "2h"},
        "analysis": {"onInconclusive": "Hold", "maxInconclusiveChecks": 100},
    }


@pytest.fixture
def traffic(prometheus: Prometheus) -> Iterator[SyntheticTraffic]:
    synthetic = SyntheticTraffic(prometheus, unique_name("synthetic")).start()
    yield synthetic
    synthetic.stop()


@pytest.fixture
def operator(control_plane: ControlPlane, prometheus: Prometheus, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crd(control_plane)
    process = OperatorProcess(
        control_plane.kubeconfig,
        tmp_path / "operator.log",
        {"SLUICE_RESYNC_SECONDS": "2", "SLUICE_PROMETHEUS_URL": prometheus.url},
    ).start()
    yield process
    process.stop()


def mid_rollout(rollouts: Rollouts, name: str, operator: OperatorProcess) -> None:
    assert operator.record is not None
    rollouts.create(name)
    rollouts.wait(lambda: rollouts.stable(name, "1.0.0"), "Stable", TIMEOUT, [operator.record])
    rollouts.roll_out(name, "2.0.0")
    rollouts.wait(lambda: rollouts.status(name).get("canaryWeight") == 25, "the first step", TIMEOUT, [operator.record])
    kinds = sorted(kind for kind, _ in rollouts.children()[name])
    assert kinds == ["Deployment", "Deployment", "HTTPRoute", "Service", "Service"], kinds


def delete(rollouts: Rollouts, name: str) -> None:
    rollouts.custom.delete_namespaced_custom_object(GROUP, VERSION, rollouts.namespace, PLURAL, name)


def test_deleting_mid_rollout_removes_every_child(
    kube_api_client: ApiClient, restricted_namespace: str, traffic: SyntheticTraffic, operator: OperatorProcess
) -> None:
    rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec)
    mid_rollout(rollouts, "doomed", operator)
    delete(rollouts, "doomed")
    assert operator.record is not None
    rollouts.wait(lambda: "doomed" not in rollouts.children(), "children collected", TIMEOUT, [operator.record])
    assert rollouts.get("doomed") is None


def test_deleting_while_the_operator_is_down_completes_and_the_operator_recreates_nothing(
    kube_api_client: ApiClient, restricted_namespace: str, traffic: SyntheticTraffic, operator: OperatorProcess
) -> None:
    rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec)
    mid_rollout(rollouts, "orphan", operator)
    operator.stop()
    delete(rollouts, "orphan")
    wait_until(lambda: rollouts.get("orphan") is None, timeout=TIMEOUT, what="the ModelDeployment gone")
    wait_until(lambda: "orphan" not in rollouts.children(), timeout=TIMEOUT, what="children collected")
    operator.start()
    assert operator.record is not None
    wait_until(
        lambda: "sluice-operator starting" in operator.log_path.read_text(),
        timeout=TIMEOUT,
        what="the operator restarted",
        watched=[operator.record],
    )
    seen = []
    end = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < end:
        seen.append(rollouts.children().get("orphan", []))
        time.sleep(0.5)
    assert not any(seen), f"the restarted operator recreated children: {seen}"
    assert not client.AppsV1Api(kube_api_client).list_namespaced_deployment(restricted_namespace).items
    assert operator.is_running(), operator.log_tail()
    assert "Traceback" not in operator.log_path.read_text(), operator.log_tail()


def test_deleting_the_namespace_mid_rollout_finishes(
    kube_api_client: ApiClient, traffic: SyntheticTraffic, operator: OperatorProcess
) -> None:
    namespace = create_namespace(kube_api_client, prefix="doomed-ns")
    create_gateway(kube_api_client, namespace)
    rollouts = Rollouts(kube_api_client, namespace, traffic, spec)
    mid_rollout(rollouts, "inside", operator)
    core = client.CoreV1Api(kube_api_client)
    core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    assert operator.record is not None
    wait_until(gone, timeout=TIMEOUT, what=f"namespace {namespace} deleted", watched=[operator.record])
    assert operator.is_running(), operator.log_tail()
