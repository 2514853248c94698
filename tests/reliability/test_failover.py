"""Two operator replicas: only the holder of the leader-election Lease acts, and a rollout survives a failover.

Mechanism (docs/operations.md, Leader election): a `coordination.k8s.io/v1` Lease with optimistic concurrency;
a replica starts watching and reconciling only after acquiring it, and exits if it cannot renew within the renew
deadline (shorter than the lease duration), so the old leader stops before a standby may take over.

Evidence that at no time both acted: the replicas use different field managers (`sluice-a`, `sluice-b`). A watch
on the ModelDeployments records the status field managers of every delivered state; until the leader is killed
only `sluice-a` appears, and the Lease holder is replica-a; after the kill, replica-b takes the Lease and the
rollouts started before the kill finish with their expected outcomes (one to promote, one to roll back).

The leader (least-privilege identity) reaches the API server through `harness.trapproxy.TrapProxy` and is
SIGKILLed right after a Lease renewal of its was answered, mid-rollout: the worst case for the standby, which must
wait out a whole lease duration, and must not take over earlier (asserted from the moment of the kill, whatever
the machine's speed).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, unique_name, wait_until
from harness.trapproxy import Exchange, TrapProxy
from integration.operator_support import (
    OperatorProcess,
    create_operator_identity,
    lease_holder,
    operator_replicas,
    write_token_kubeconfig,
)
from reliability.crash_points import grant_leases, is_lease_renewal
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


class KillAfterRenewal:
    """The trap of the leader's proxy: once `armed`, SIGKILLs it when its next Lease renewal has been answered."""

    def __init__(self, leader: OperatorProcess) -> None:
        self._leader = leader
        self.armed = threading.Event()
        self.killed_at: float | None = None
        """time.monotonic() of the kill."""

    def trap(self, exchange: Exchange) -> bool:
        record = self._leader.record
        if not self.armed.is_set() or self.killed_at is not None or record is None:
            return False
        if not (exchange.accepted and is_lease_renewal(exchange)):
            return False
        os.kill(record.pid, signal.SIGKILL)
        self.killed_at = time.monotonic()
        return True


@pytest.fixture
def replicas(
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    prometheus: Prometheus,
    restricted_namespace: str,
    tmp_path: Path,
) -> Iterator[tuple[str, OperatorProcess, OperatorProcess, KillAfterRenewal]]:
    """replica-a behind a TrapProxy with its `KillAfterRenewal`, replica-b straight to the API server."""
    lease, first, second = operator_replicas(
        control_plane,
        restricted_namespace,
        tmp_path,
        {"SLUICE_RESYNC_SECONDS": "2", "SLUICE_PROMETHEUS_URL": prometheus.url},
        own_field_managers=True,
    )
    identity = unique_name("sluice-system")
    token = create_operator_identity(kube_api_client, identity)
    grant_leases(kube_api_client, restricted_namespace, identity)
    killer = KillAfterRenewal(first)
    proxy = TrapProxy(control_plane.server_url, control_plane.certificates.ca_cert, killer.trap).start()
    first.kubeconfig = write_token_kubeconfig(tmp_path / "replica-a.kubeconfig", proxy.url, token)
    yield lease, first, second, killer
    for process in (first, second):
        process.stop()
    proxy.stop()


def test_a_rollout_survives_a_failover_and_only_the_leader_ever_acts(
    kube_api_client: ApiClient,
    restricted_namespace: str,
    traffic: SyntheticTraffic,
    replicas: tuple[str, OperatorProcess, OperatorProcess, KillAfterRenewal],
) -> None:
    lease, first, second, killer = replicas
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
        killer.armed.set()
        wait_until(lambda: killer.killed_at is not None, timeout=TIMEOUT, what="replica-a renews its Lease")
        assert killer.killed_at is not None
        killed_at = killer.killed_at
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
        f"failover: replica-b took the Lease {took_over:.1f} s after replica-a was SIGKILLed right after a renewal "
        f"(lease {LEASE_DURATION:.0f} s); status writers before the kill {sorted(managers_before)}, "
        f"after {sorted(managers_after)}"
    )
    assert took_over > LEASE_DURATION - 1, "the standby took over a Lease renewed less than a lease duration ago"
    assert managers_before == {"sluice-a"}, managers_before
    assert "sluice-b" in managers_after, managers_after
    problems: list[str] = []
    for name, versions in plans.items():
        problems += history_problems(rollouts.status(name), versions)
    problems += rollouts.duplicate_children()
    assert not problems, "\n".join(problems) + "\n" + second.log_tail()
    assert second.is_running()
