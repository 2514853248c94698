"""The reconciler reads the world beside the Deployments: the pods of a track that cannot start, the HTTPRoute's
acceptance by its parents, the actual share."""

from __future__ import annotations

from typing import Any

from sluice.core.conditions import find_condition
from sluice.core.world import PODS_CAN_START, ROUTE_ACCEPTED, ROUTE_GRACE
from unit.operator.memory_cluster import MemoryCluster
from unit.operator.test_reconciler import GATEWAY, NAME, NAMES, NAMESPACE, Harness, spec, stable


def unschedulable_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"sluice.dev/modeldeployment": NAME}},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "x" * 5000}
            ],
        },
    }


def condition(harness: Harness, condition_type: str) -> tuple[str, str, str]:
    found = find_condition(harness.cluster.status(NAMESPACE, NAME).conditions, condition_type)
    assert found is not None
    return found.status, found.reason, found.message


def test_pods_the_scheduler_cannot_place_are_reported_with_a_bounded_message_and_one_warning_event() -> None:
    harness = Harness()
    harness.create(spec())
    harness.reconcile()
    for index in range(3):
        harness.cluster.put(unschedulable_pod(f"{NAMES.stable_deployment}-{index}"))

    harness.reconcile()
    harness.reconcile()

    status, reason, message = condition(harness, PODS_CAN_START)
    assert (status, reason) == ("False", "Unschedulable")
    assert message.startswith("3 pods cannot start (Unschedulable)")
    assert len(message) < 200
    assert "x" * 10 not in message, "the scheduler's free text is not copied"
    assert harness.event_reasons().count("PodsCannotStart") == 1


def test_pods_are_listed_only_while_a_track_is_not_ready() -> None:
    harness = stable(Harness(), spec())
    harness.cluster.put(unschedulable_pod("left-over"))

    harness.reconcile()

    assert condition(harness, PODS_CAN_START)[0] == "True"


def test_a_route_whose_gateway_does_not_exist_is_not_accepted_and_moves_no_weight() -> None:
    harness = stable(Harness(cluster=MemoryCluster()), spec(traffic=GATEWAY))
    harness.set_spec(spec("2.0.0", traffic=GATEWAY))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
    harness.now += ROUTE_GRACE

    harness.reconcile()
    harness.reconcile()

    assert condition(harness, ROUTE_ACCEPTED)[:2] == ("False", "NoParentStatus")
    route = harness.cluster.get("HTTPRoute", NAMESPACE, NAME)
    assert route is not None
    weights = {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}
    assert weights == {NAMES.service: 100, NAMES.canary_service: 0}
    assert "RouteNotAccepted" in harness.event_reasons()
    assert harness.cluster.status(NAMESPACE, NAME).actual_weight is None


def test_with_an_accepted_route_the_actual_share_is_the_route_weight() -> None:
    harness = stable(Harness(), spec(traffic=GATEWAY))
    harness.set_spec(spec("2.0.0", traffic=GATEWAY))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)

    harness.reconcile()

    status = harness.cluster.status(NAMESPACE, NAME)
    assert (status.canary_weight, status.actual_weight) == (10, 10)
    assert condition(harness, ROUTE_ACCEPTED)[:2] == ("True", "Accepted")
