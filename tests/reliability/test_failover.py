"""Two operator replicas: only the holder of the leader-election Lease acts, and a rollout survives a failover.

Mechanism (docs/operations.md, Leader election): a `coordination.k8s.io/v1` Lease with optimistic concurrency;
a replica starts watching and reconciling only after acquiring it, and exits if it cannot renew within the renew
deadline (shorter than the lease duration), so the old leader stops before a standby may take over.

Evidence that at no time both acted: the replicas use different field managers (`sluice-a`, `sluice-b`). A watch
on the ModelDeployments records the status field managers of every delivered state; until the leader is killed
only `sluice-a` appears, and the Lease holder is replica-a; after the kill, replica-b takes the Lease and the
rollouts started before the kill finish with their expected outcomes (one to promote, one to roll back).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, unique_name, wait_until
from integration.operator_support import OperatorProcess, lease_holder, operator_replicas
from reliability.support import Recorder, Rollouts, SyntheticTraffic, history_problems
from sluice.adapters.leader import LeaseTiming

pytestmark = pytest.mark.e2e

TIMEOUT = 120.0
LEASE_DURATION = LeaseTiming().lease_duration.total_seconds()


def spec(version: str) -> dict[str, Any]:
    return {
        "model": {"version": version, "uri": "https://models.example.com/iris/model.onnx", "format": "onnx"},
        "replicas": 1,
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "rollout": {"steps": [10, 20, 30, 40, 50], "interval": "4s", "progressDeadline": "3m"},
        "analysis": {"minRequests": 10, "maxFailedChecks": 3, "onInconclusive": "Hold", "maxInconclusiveChecks": 5},
    }


@pytest.fixture
def traffic(prometheus: Prometheus) -> Iterator[SyntheticTraffic]:
    synthetic = SyntheticTraffic(prometheus, unique_name("synthetic")).start()
    yield synthetic
    synthetic.stop()


@pytest.fixture
def replicas(
    control_plane: ControlPlane, prometheus: Prometheus, restricted_namespace: str, tmp_path: Path
) -> Iterator[tuple[str, OperatorProcess, OperatorProcess]]:
    lease, first, second = operator_replicas(
        control_plane,
        restricted_namespace,
        tmp_path,
        {"SLUICE_RESYNC_SECONDS": "2", "SLUICE_PROMETHEUS_URL": prometheus.url},
        own_field_managers=True,
    )
    yield lease, first, second
    for process in (first, second):
        process.stop()


def test_a_rollout_survives_a_failover_and_only_the_leader_ever_acts(
    kube_api_client: ApiClient,
    restricted_namespace: str,
    traffic: SyntheticTraffic,
    replicas: tuple[str, OperatorProcess, OperatorProcess],
) -> None:
    lease, first, second = replicas
    namespace = restricted_namespace
    first.start()
    assert first.record is not None
    wait_until(
        lambda: lease_holder(kube_api_client, namespace, lease).startswith("replica-a_"),
        timeout=TIMEOUT,
        what="replica-a leads",
        watched=[first.record],
    )
    second.start()
    assert second.record is not None
    rollouts = Rollouts(kube_api_client, namespace, traffic, spec)
    recorder = Recorder(kube_api_client, namespace).start()
    plans = {"good": ["2.0.0"], "bad": ["2.0.0-bad"]}
    try:
        for name, versions in plans.items():
            rollouts.create(name, upcoming=versions)
        for name in plans:
            rollouts.wait(partial(rollouts.stable, name, "1.0.0"), f"{name} Stable", TIMEOUT, [first.record])
        for name, versions in plans.items():
            rollouts.roll_out(name, versions[0])
        rollouts.wait(
            lambda: int(rollouts.status("good").get("canaryWeight") or 0) >= 20,
            "good at its second step",
            TIMEOUT,
            [first.record],
        )
        assert "is held by replica-a_" in second.log_path.read_text()
        os.kill(first.record.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        snapshots_before_kill = len(recorder.snapshots)
        wait_until(
            lambda: lease_holder(kube_api_client, namespace, lease).startswith("replica-b_"),
            timeout=LEASE_DURATION + 15,
            what="replica-b takes over",
            watched=[second.record],
        )
        took_over = time.monotonic() - killed_at
        for name, versions in plans.items():
            rollouts.wait(partial(rollouts.finished, name, versions[-1]), f"{name} finished", TIMEOUT, [second.record])
    finally:
        recorder.stop()

    before, after = recorder.snapshots[:snapshots_before_kill], recorder.snapshots[snapshots_before_kill:]
    managers_before = set().union(*(shot.status_managers for shot in before))
    managers_after = set().union(*(shot.status_managers for shot in after))
    print(
        f"failover: replica-b took the Lease {took_over:.1f} s after replica-a was SIGKILLed "
        f"(lease {LEASE_DURATION:.0f} s); status writers before the kill {sorted(managers_before)}, "
        f"after {sorted(managers_after)}"
    )
    assert managers_before == {"sluice-a"}, managers_before
    assert "sluice-b" in managers_after, managers_after
    problems: list[str] = []
    for name, versions in plans.items():
        problems += history_problems(rollouts.status(name), versions)
    problems += rollouts.duplicate_children()
    assert not problems, "\n".join(problems) + "\n" + second.log_tail()
    assert second.is_running()
