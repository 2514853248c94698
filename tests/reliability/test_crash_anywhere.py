"""Crash anywhere: rollouts that should promote and rollouts that should roll back run in parallel
ModelDeployments while the operator is SIGKILLed at chosen points of its work and restarted at once.

The operator (least-privilege identity, leader election on a Lease) reaches the API server through
`harness.trapproxy.TrapProxy`; `reliability.crash_points.Killer` recognizes its requests and kills it right
after a child's apply, right after a status write, between two child applies, right after a Lease renewal, at
start-up before its first list, and at random moments, cycling so that each point gets its share. The run goes on
(more rollouts per ModelDeployment, up to a cap) until every point has been hit `MIN_KILLS` times: the coverage
does not depend on the machine's speed. It prints the kill coverage table.

Invariants: every rollout reaches the outcome it reaches without kills (a `bad` version RolledBack, any other
Promoted); `status.history` holds exactly one entry per rollout, in order; no ModelDeployment ever has a child
besides its fixed names; within a rollout the canary weight never goes up after a Failed check (from a watch on
the ModelDeployments, every delivered state); no write leaves a state a crash must not freeze: a status claiming a
weight or version its children do not have yet, or an HTTPRoute sending requests to a canary without replicas
(from the proxy's journal of accepted writes). The metrics come from the real Prometheus scraping
`SyntheticTraffic`.

Short (make test): 4 ModelDeployments x at least 3 rollouts, every point hit twice. Full (make stress): 10 x at
least 5, every point hit 5 times. `SLUICE_STRESS_SEED` seeds the random kills.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, unique_name
from harness.trapproxy import TrapProxy
from integration.operator_support import OperatorProcess, create_operator_identity, write_token_kubeconfig
from integration.sluice_crd import install_crd
from reliability.crash_points import Killer, LeaseRef, grant_leases, unsafe_states
from reliability.support import (
    Recorder,
    Rollouts,
    SyntheticTraffic,
    expected_outcome,
    finished,
    history_problems,
    size,
    weights_never_rise_after_a_failed_check,
)
from sluice.api.v1alpha1 import HISTORY_LIMIT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(size(600, 1500))]
"""Full size: 50-120 rollouts and every point's kills take longer than the suite's 10-minute limit allows."""

OBJECTS = size(4, 10)
ROLLOUTS_EACH = size(3, 5)
MAX_ROLLOUTS_EACH = HISTORY_LIMIT
"""Rollouts per ModelDeployment the run may grow to while some kill point still lacks its kills: as many as
`status.history` keeps (a seed-2 stress run on a quieter machine needed 12 each)."""
MIN_KILLS = size(2, 5)
"""SIGKILLs every kill point must get."""
INTERVAL = "2s"
STALL_SECONDS = 120.0
"""A rollout fails when its ModelDeployment's status has not changed for this long (however long it takes while
it moves: the kills slow it down more on a slower machine)."""


def spec(version: str) -> dict[str, Any]:
    return {
        "model": {"version": version, "uri": "https://models.example.com/iris/model.onnx", "format": "onnx"},
        "replicas": 1,
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "rollout": {"steps": [25, 50], "interval": INTERVAL, "progressDeadline": "2m"},
        "analysis": {"minRequests": 10, "maxInconclusiveChecks": 3, "onInconclusive": "Hold"},
    }


def version(index: int, n: int) -> str:
    """The `n`th rollout of ModelDeployment `index`: good and bad alternate, starting differently per object."""
    return f"{n + 2}.0.0{'-bad' if (index + n) % 2 else ''}"


def wait_for_the_end(rollouts: Rollouts, name: str, version: str) -> str | None:
    """Wait until the rollout of `version` has ended; what went wrong if its status stopped changing first."""
    last: dict[str, Any] | None = None
    changed_at = time.monotonic()
    while not finished(status := rollouts.status(name), version):
        if status != last:
            last, changed_at = status, time.monotonic()
        elif time.monotonic() - changed_at > STALL_SECONDS:
            return f"{name} {version}: status unchanged for {STALL_SECONDS:.0f} s: {status}"
        time.sleep(0.3)
    return None


@pytest.fixture
def traffic(prometheus: Prometheus) -> Iterator[SyntheticTraffic]:
    synthetic = SyntheticTraffic(prometheus, unique_name("synthetic")).start()
    yield synthetic
    synthetic.stop()


def test_rollouts_reach_their_outcome_while_the_operator_is_killed_at_every_point(  # noqa: PLR0917 (fixtures)
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    prometheus: Prometheus,
    restricted_namespace: str,
    traffic: SyntheticTraffic,
    tmp_path: Path,
) -> None:
    install_crd(control_plane)
    identity = unique_name("sluice-system")
    token = create_operator_identity(kube_api_client, identity)
    grant_leases(kube_api_client, restricted_namespace, identity)
    lease = LeaseRef(kube_api_client, restricted_namespace, unique_name("sluice-leader"))
    operator = OperatorProcess(
        tmp_path / "kubeconfig",
        tmp_path / "operator.log",
        {
            "SLUICE_NAMESPACES": restricted_namespace,
            "SLUICE_RESYNC_SECONDS": "2",
            "SLUICE_PROMETHEUS_URL": prometheus.url,
            "SLUICE_PROMETHEUS_TIMEOUT": "3",
            "SLUICE_LEADER_ELECTION_LEASE": lease.name,
            "SLUICE_LEADER_ELECTION_NAMESPACE": restricted_namespace,
            "POD_NAME": "crash",
        },
    )
    killer = Killer(operator, lease, seed=int(os.environ.get("SLUICE_STRESS_SEED", "8")))
    proxy = TrapProxy(control_plane.server_url, control_plane.certificates.ca_cert, killer.trap).start()
    write_token_kubeconfig(operator.kubeconfig, proxy.url, token)
    operator.start()
    rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec)
    recorder = Recorder(kube_api_client, restricted_namespace).start()
    names = [f"md-{index}" for index in range(OBJECTS)]
    plans: dict[str, list[str]] = {name: [] for name in names}
    """The rollouts started, per ModelDeployment."""
    for index, name in enumerate(names):
        rollouts.create(name, upcoming=[version(index, n) for n in range(MAX_ROLLOUTS_EACH)])
    duplicates: list[str] = []
    """Children beyond the fixed names, looked for after every finished rollout (and at the end)."""
    stalls: list[str] = []
    """Rollouts whose status stopped changing before they ended."""
    try:
        for name in names:
            rollouts.wait(partial(rollouts.stable, name, "1.0.0"), f"{name} Stable", timeout=90)
        killer.start()

        def drive(index: int, name: str) -> None:
            for n in range(MAX_ROLLOUTS_EACH):
                if n >= ROLLOUTS_EACH and killer.covered(MIN_KILLS):
                    return
                plans[name].append(version(index, n))
                rollouts.roll_out(name, plans[name][-1])
                stalled = wait_for_the_end(rollouts, name, plans[name][-1])
                if stalled:
                    stalls.append(stalled)
                    return
                duplicates.extend(rollouts.duplicate_children())

        with ThreadPoolExecutor(max_workers=OBJECTS) as pool:
            for future in [pool.submit(drive, index, name) for index, name in enumerate(names)]:
                future.result()
    finally:
        killer.stop()
        recorder.stop()
        log_tail = operator.log_tail(80)
        operator.stop()
        proxy.stop()

    problems = list(stalls)
    for name in names:
        problems += history_problems(rollouts.status(name), plans[name])
        problems += weights_never_rise_after_a_failed_check(recorder.of(name))
    problems += duplicates + rollouts.duplicate_children()
    problems += unsafe_states(proxy.journal())
    outcomes = [expected_outcome(v) for p in plans.values() for v in p]
    print(
        f"\ncrash anywhere: {len(outcomes)} rollouts ({outcomes.count('Promoted')} promoted, "
        f"{outcomes.count('RolledBack')} rolled back) across {OBJECTS} ModelDeployments, "
        f"{sum(killer.kills.values())} SIGKILLs, {killer.exits} exits by the operator itself, "
        f"{len(recorder.snapshots)} watched states, {len(proxy.journal())} accepted writes\n{killer.table()}"
    )
    assert not problems, "\n".join(problems) + "\n" + log_tail
    assert killer.covered(MIN_KILLS), f"a kill point got fewer than {MIN_KILLS} SIGKILLs:\n{killer.table()}"
