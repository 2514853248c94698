"""`Reconciler.reconcile` with rollout.shadow on an in-memory cluster: the HTTPRoute carries a RequestMirror filter
only once every parent Gateway's class lists HTTPRouteRequestMirror (or the admin asserts it); until then the route
sends everything to stable, the status says why and a Warning Event names the class."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sluice.api.v1alpha1 import Phase
from sluice.core.conditions import PROGRESSING, find_condition
from unit.operator.test_reconciler import GATEWAY, NAME, NAMES, NAMESPACE, Harness, spec, stable

SHADOW = {"percent": 30, "checks": 1, "minAgreement": 0.9}
TRAEFIK_FEATURES = [{"name": "Gateway"}, {"name": "HTTPRoute"}, {"name": "HTTPRouteHostRewrite"}]


def route_rule(harness: Harness) -> dict[str, Any]:
    route = harness.cluster.get("HTTPRoute", NAMESPACE, NAMES.route)
    assert route is not None
    rule: dict[str, Any] = route["spec"]["rules"][0]
    return rule


def weights(harness: Harness) -> list[int]:
    return [ref["weight"] for ref in route_rule(harness)["backendRefs"]]


def rolling_out_behind(harness: Harness, features: list[Any] | None) -> Harness:
    """Stable 1.0.0 behind Gateway ml/public (class `gw`, publishing `features`), 2.0.0 applied, canary ready."""
    harness.cluster.add_gateway(NAMESPACE, "public", "gw")
    harness.cluster.add_gateway_class("gw", features)
    rollout = {"steps": [10, 50], "interval": "1m", "progressDeadline": "10m", "shadow": SHADOW}
    stable(harness, spec(traffic=GATEWAY, rollout=rollout))
    harness.set_spec(spec("2.0.0", traffic=GATEWAY, rollout=rollout))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
    return harness


def progressing(harness: Harness) -> tuple[str, str, str]:
    found = find_condition(harness.cluster.status(NAMESPACE, NAME).conditions, PROGRESSING)
    assert found is not None
    return found.status, found.reason, found.message


def test_behind_a_class_lacking_request_mirror_the_route_never_mirrors_and_stable_keeps_all_traffic() -> None:
    harness = rolling_out_behind(Harness(), TRAEFIK_FEATURES)
    for _ in range(3):
        assert harness.reconcile() == timedelta(minutes=1)
        assert "filters" not in route_rule(harness)
        assert weights(harness) == [100, 0]
        harness.now += timedelta(minutes=1)
    assert harness.status_phase() is Phase.SHADOWING
    status, reason, message = progressing(harness)
    assert (status, reason) == ("False", "GatewayLacksRequestMirror")
    assert "GatewayClass gw of Gateway ml/public does not list HTTPRouteRequestMirror" in message
    warnings = [event for event in harness.cluster.events if event.reason == "GatewayLacksRequestMirror"]
    assert [event.message for event in warnings] == [message]


def test_the_route_mirrors_once_the_class_lists_request_mirror() -> None:
    harness = rolling_out_behind(Harness(), TRAEFIK_FEATURES)
    harness.reconcile()
    harness.cluster.add_gateway_class("gw", [*TRAEFIK_FEATURES, {"name": "HTTPRouteRequestMirror"}])
    harness.reconcile()
    mirror = route_rule(harness)["filters"][0]
    assert (mirror["type"], mirror["requestMirror"]["percent"]) == ("RequestMirror", 30)
    assert weights(harness) == [100, 0]
    assert progressing(harness)[:2] == ("True", "Shadowing")


def test_a_forbidden_gateway_class_leaves_support_unknown_and_the_route_unmirrored() -> None:
    harness = rolling_out_behind(Harness(), [{"name": "HTTPRouteRequestMirror"}])
    harness.cluster.forbidden_kinds.add("GatewayClass")
    harness.reconcile()
    assert "filters" not in route_rule(harness)
    status, reason, message = progressing(harness)
    assert (status, reason) == ("False", "RequestMirrorSupportUnknown")
    assert "the operator may not read GatewayClass gw of Gateway ml/public (Forbidden)" in message


def test_the_admin_can_assert_support_for_a_class_that_publishes_no_features() -> None:
    harness = rolling_out_behind(Harness(), None)
    harness.reconcile()
    assert "filters" not in route_rule(harness)
    assert progressing(harness)[1] == "RequestMirrorSupportUnknown"
    asserting = harness.reconciler()
    asserting.mirror_gateway_classes = frozenset({"gw"})
    asyncio.run(asserting.reconcile(NAMESPACE, NAME))
    assert route_rule(harness)["filters"][0]["requestMirror"]["percent"] == 30
