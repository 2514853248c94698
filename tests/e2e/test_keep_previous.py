"""Instant rollback after promotion (rollout.keepPrevious) end to end, on the harness of test_canary_rollouts (the
real control plane with kwok pods, the real operator behind the counting proxy, real `sluice-serving` processes
for the pods, the real Prometheus, a load generator routing by the HTTPRoute's weights).

2.0.0 is promoted through its steps while 1.0.0's pods are kept; the undo (`kubectl sluice undo` writes the spec
back to revision 1) moves all traffic back to those very pods in one write of the HTTPRoute, with no request
failing and no weight in between; 1.0.0 is stable again as it stood.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from e2e.support import Scenario, load
from integration.operator_support import CountingProxy
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from sluice.core.children import TRACK_LABEL

pytestmark = pytest.mark.e2e

UNDO_BOUND_SECONDS = 5.0
"""From the undo's write to the route's canary weight 0: one reconcile (the watch event wakes the loop at once)."""


def pod_uids(scenario: Scenario, track: str) -> set[str]:
    response: Any = client.CoreV1Api(scenario.api_client).list_namespaced_pod(
        scenario.namespace, label_selector=f"{TRACK_LABEL}={track}", _preload_content=False
    )
    pods = json.loads(response.data)["items"]
    return {pod["metadata"]["uid"] for pod in pods if "deletionTimestamp" not in pod["metadata"]}


def test_undo_within_keep_previous_moves_all_traffic_back_to_the_kept_pods_in_one_route_write(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario], proxy: CountingProxy
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0")
    keep = {"spec": {"rollout": {"keepPrevious": "5m"}}}
    scenario.custom.patch_namespaced_custom_object(GROUP, VERSION, scenario.namespace, PLURAL, scenario.name, keep)
    kept_pods = pod_uids(scenario, "stable")
    canary = f"{scenario.name}-canary"

    with load(scenario) as generator:
        scenario.set_version("2.0.0")
        scenario.follow(lambda s: s.get("phase") == "Promoted" and s.get("canaryWeight") == 100, "2.0.0 promoted")
        scenario.wait(lambda: scenario.route_weights()[canary] == 100, "all traffic on 2.0.0's pods")
        served_before = generator.stats.by_version[("2.0.0", 200)]
        assert pod_uids(scenario, "stable") == kept_pods, "1.0.0's pods are kept, not replaced"
        proxy.reset()

        undone_at = time.monotonic()
        scenario.set_version("1.0.0")  # what `kubectl sluice undo` writes within the window
        weights_seen = []
        while (weight := scenario.route_weights()[canary]) != 0:  # one read per look: each look is recorded
            weights_seen.append(weight)
            assert time.monotonic() - undone_at < 30, scenario.diagnostics()
            time.sleep(0.05)
        seconds = time.monotonic() - undone_at
        scenario.wait(lambda: scenario.status().get("phase") == "Stable", "1.0.0 stable again")
        time.sleep(1.0)
        served_by_kept = generator.stats.by_version[("1.0.0", 200)]

    print(f"undo to all traffic on the kept revision: {seconds:.2f} s")
    status = scenario.status()
    entry = status["history"][-1]
    assert (entry["outcome"], entry["reason"]) == ("RolledBackAfterPromotion", "Undone"), entry
    assert status["stableRevision"]["number"] == 1
    assert "previous" not in status
    assert set(weights_seen) <= {100}, f"no weight between 100 and 0: {weights_seen}"
    route_writes = proxy.writes(f"/namespaces/{scenario.namespace}/httproutes")
    assert len(route_writes) == 1, route_writes
    assert not proxy.writes(f"/namespaces/{scenario.namespace}/deployments/{scenario.name}-stable"), "kept as is"
    assert pod_uids(scenario, "stable") == kept_pods
    assert served_before > 0
    assert served_by_kept > 0
    assert not [key for key in generator.stats.by_version if key[1] != 200], generator.stats.by_version
    assert seconds < UNDO_BOUND_SECONDS
