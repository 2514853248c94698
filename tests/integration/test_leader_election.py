"""Two `sluice-operator` replicas sharing one leader-election Lease: only the holder reconciles; when it is killed
(SIGKILL: no release), the standby takes the Lease over once it expires and reconciles in its place.

The operators run as subprocesses with the admin kubeconfig, watching only the test's namespace.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness import ControlPlane, wait_until
from integration.operator_support import OperatorProcess, lease_holder, operator_replicas, status_of
from sluice.adapters.leader import LeaseTiming
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
LEASE_DURATION = LeaseTiming().lease_duration.total_seconds()
TAKEOVER_SLACK = 10.0
"""A retry period, one read and write, and a loaded test machine."""


def create_model_deployment(api_client: ApiClient, namespace: str, name: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"version": "1.0.0", "uri": "https://models.example.com/iris/1.0.0/model.onnx", "format": "onnx"},
            "replicas": 1,
        },
    }
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def observed_generation(api_client: ApiClient, namespace: str, name: str) -> int | None:
    obj = cast(
        dict[str, Any],
        client.CustomObjectsApi(api_client).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name),
    )
    generation = status_of(obj).get("observedGeneration")
    return generation if isinstance(generation, int) else None


@pytest.fixture
def replicas(
    control_plane: ControlPlane, restricted_namespace: str, tmp_path: Path
) -> Iterator[tuple[str, OperatorProcess, OperatorProcess]]:
    """Two operators (not started) for one Lease in the test namespace; stopped by PID afterwards."""
    lease, first, second = operator_replicas(
        control_plane,
        restricted_namespace,
        tmp_path,
        {"SLUICE_RESYNC_SECONDS": "3", "SLUICE_PROMETHEUS_URL": "http://127.0.0.1:9"},
        own_field_managers=False,
    )
    yield lease, first, second
    for process in (first, second):
        process.stop()


def test_only_the_lease_holder_reconciles_and_the_standby_takes_over_when_it_dies(
    kube_api_client: ApiClient,
    restricted_namespace: str,
    replicas: tuple[str, OperatorProcess, OperatorProcess],
) -> None:
    lease, first, second = replicas
    namespace = restricted_namespace

    first.start()
    assert first.record is not None
    wait_until(
        lambda: lease_holder(kube_api_client, namespace, lease).startswith("replica-a_"),
        timeout=TIMEOUT,
        what="replica-a to acquire the lease",
        watched=[first.record],
    )
    second.start()
    assert second.record is not None
    wait_until(
        lambda: "is held by replica-a_" in second.log_path.read_text(),
        timeout=TIMEOUT,
        what="replica-b to wait for the lease",
        watched=[second.record],
    )

    create_model_deployment(kube_api_client, namespace, "before")
    wait_until(
        lambda: observed_generation(kube_api_client, namespace, "before") == 1,
        timeout=TIMEOUT,
        what="the leader to reconcile 'before'",
        watched=[first.record, second.record],
    )
    assert lease_holder(kube_api_client, namespace, lease).startswith("replica-a_")
    standby_log = second.log_path.read_text()
    assert "acquired lease" not in standby_log
    assert "before" not in standby_log, "the standby must not reconcile"

    os.kill(first.record.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(
        lambda: lease_holder(kube_api_client, namespace, lease).startswith("replica-b_"),
        timeout=LEASE_DURATION + TAKEOVER_SLACK,
        what="replica-b to take the lease over",
        watched=[second.record],
    )
    took_over_after = time.monotonic() - killed_at
    assert took_over_after <= LEASE_DURATION + TAKEOVER_SLACK
    assert "acquired lease" in second.log_path.read_text()

    create_model_deployment(kube_api_client, namespace, "after")
    wait_until(
        lambda: observed_generation(kube_api_client, namespace, "after") == 1,
        timeout=TIMEOUT,
        what="the new leader to reconcile 'after'",
        watched=[second.record],
    )
    assert second.is_running()
