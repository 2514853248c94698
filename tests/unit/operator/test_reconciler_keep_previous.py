"""`Reconciler.reconcile` with rollout.keepPrevious on an in-memory cluster: the promotion keeps the stable
Deployment as it is, the post-promotion checks read the promoted version on the canary track, and the undo is
one HTTPRoute write with the kept Deployment untouched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sluice.api.v1alpha1 import Phase
from unit.operator.test_reconciler import GATEWAY, NAME, NAMES, NAMESPACE, Harness, spec, stable

ROLLOUT = {
    "steps": [50],
    "interval": "1m",
    "progressDeadline": "10m",
    "keepPrevious": "10m",
    "postPromotionAnalysis": True,
}


def keeping(version: str) -> dict[str, Any]:
    return spec(version, traffic=GATEWAY, rollout=ROLLOUT)


def route_weights(harness: Harness) -> dict[str, int]:
    route = harness.cluster.get("HTTPRoute", NAMESPACE, NAME)
    assert route is not None
    return {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}


def promoted() -> Harness:
    harness = stable(Harness(), keeping("1.0.0"))
    harness.set_spec(keeping("2.0.0"))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
    harness.reconcile()
    harness.now += timedelta(minutes=1)
    harness.reconcile()
    assert harness.status_phase() is Phase.PROMOTED
    harness.cluster.writes.clear()
    harness.metrics.queries.clear()
    return harness


def test_a_kept_promotion_sends_all_traffic_to_the_canary_and_leaves_the_stable_deployment_on_the_old_version() -> None:
    harness = promoted()
    deployment = harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment)
    assert deployment is not None
    assert deployment["metadata"]["labels"]["sluice.dev/version"] == "1.0.0"
    assert route_weights(harness) == {NAMES.service: 0, NAMES.canary_service: 100}


def test_a_post_promotion_check_reads_the_promoted_version_beside_the_previous_one() -> None:
    harness = promoted()
    harness.now += timedelta(minutes=1)
    harness.reconcile()
    assert [(query.version, query.stable_version) for query in harness.metrics.queries] == [("2.0.0", "1.0.0")]


def test_the_undo_is_one_route_write_and_leaves_the_kept_deployment_as_it_is() -> None:
    harness = promoted()
    harness.set_spec(keeping("1.0.0"))
    harness.reconcile()
    assert route_weights(harness) == {NAMES.service: 100, NAMES.canary_service: 0}
    assert harness.cluster.writes.count(f"apply HTTPRoute/{NAME}") == 1
    assert f"apply Deployment/{NAMES.stable_deployment}" not in harness.cluster.writes
    assert harness.status_phase() is Phase.STABLE
