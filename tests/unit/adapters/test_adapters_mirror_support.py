"""Reading whether the route's parent Gateways implement RequestMirror: Gateway -> gatewayClassName -> the
GatewayClass's status.supportedFeatures, in both published forms, and every way the answer can stay unknown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice.adapters.mirror_support import parent_gateways, supported_features
from sluice.api.v1alpha1 import GatewayTraffic
from sluice.core.plan import MirrorSupport, ParentGateway
from unit.operator.memory_cluster import MemoryCluster

PUBLIC = GatewayTraffic.model_validate({"parentRefs": [{"name": "public"}]})


def read(cluster: MemoryCluster, traffic: GatewayTraffic = PUBLIC, asserted: frozenset[str] = frozenset()) -> Any:
    return asyncio.run(parent_gateways(cluster, "ml", traffic, asserted))


def behind(gateway_class: str, features: list[Any] | None) -> MemoryCluster:
    cluster = MemoryCluster()
    cluster.add_gateway("ml", "public", gateway_class)
    cluster.add_gateway_class(gateway_class, features)
    return cluster


@pytest.mark.parametrize(
    "features",
    [
        [{"name": "Gateway"}, {"name": "HTTPRoute"}, {"name": "HTTPRouteRequestMirror"}],  # Gateway API v1.2+
        ["Gateway", "HTTPRoute", "HTTPRouteRequestMirror"],  # before v1.2
    ],
)
def test_a_class_listing_http_route_request_mirror_supports_it_in_either_published_form(features: list[Any]) -> None:
    assert read(behind("envoy", features)) == (ParentGateway("ml/public", "envoy", MirrorSupport.LISTED),)


def test_a_class_listing_its_features_without_request_mirror_lacks_it() -> None:
    traefik = [{"name": "Gateway"}, {"name": "HTTPRoute"}, {"name": "HTTPRouteHostRewrite"}]
    assert read(behind("traefik", traefik)) == (ParentGateway("ml/public", "traefik", MirrorSupport.NOT_LISTED),)


@pytest.mark.parametrize("features", [None, []])
def test_a_class_publishing_no_features_leaves_support_unknown(features: list[Any] | None) -> None:
    assert read(behind("silent", features)) == (ParentGateway("ml/public", "silent", MirrorSupport.NOT_PUBLISHED),)


def test_malformed_feature_entries_are_ignored() -> None:
    class_object = {"status": {"supportedFeatures": [{"name": 3}, {}, 7, "HTTPRoute", {"name": "Gateway"}]}}
    assert supported_features(class_object) == frozenset({"HTTPRoute", "Gateway"})


def test_a_class_the_admin_asserts_is_not_read() -> None:
    cluster = behind("silent", None)
    cluster.forbidden_kinds.add("GatewayClass")
    assert read(cluster, asserted=frozenset({"silent"})) == (
        ParentGateway("ml/public", "silent", MirrorSupport.ASSERTED),
    )


def test_a_forbidden_gateway_or_class_is_reported_as_forbidden_naming_what_was_refused() -> None:
    cluster = behind("traefik", [{"name": "HTTPRouteRequestMirror"}])
    cluster.forbidden_kinds.add("GatewayClass")
    assert read(cluster) == (ParentGateway("ml/public", "traefik", MirrorSupport.FORBIDDEN),)
    cluster.forbidden_kinds.add("Gateway")
    assert read(cluster) == (ParentGateway("ml/public", None, MirrorSupport.FORBIDDEN),)


def test_a_missing_gateway_or_class_is_reported_as_missing() -> None:
    cluster = MemoryCluster()
    assert read(cluster) == (ParentGateway("ml/public", None, MirrorSupport.MISSING),)
    cluster.add_gateway("ml", "public", "gone")
    assert read(cluster) == (ParentGateway("ml/public", "gone", MirrorSupport.MISSING),)


def test_a_gateway_class_name_that_no_object_can_have_is_not_requested() -> None:
    cluster = MemoryCluster()
    cluster.add_gateway("ml", "public", "../../namespaces/kube-system/secrets/x")
    cluster.forbidden_kinds.add("GatewayClass")  # reading any class would fail differently
    assert read(cluster) == (ParentGateway("ml/public", None, MirrorSupport.UNREADABLE),)


def test_a_parent_name_that_no_gateway_can_have_is_missing_without_a_request() -> None:
    cluster = MemoryCluster()
    cluster.forbidden_kinds.add("Gateway")  # a request would be reported as Forbidden
    traffic = GatewayTraffic.model_validate({"parentRefs": [{"name": "../../../api/v1/namespaces/x/configmaps/y"}]})
    assert read(cluster, traffic)[0].support is MirrorSupport.MISSING


def test_every_distinct_parent_is_read_in_spec_order_in_its_own_namespace() -> None:
    cluster = behind("envoy", [{"name": "HTTPRouteRequestMirror"}])
    cluster.add_gateway("edge", "public", "traefik")
    cluster.add_gateway_class("traefik", [{"name": "HTTPRoute"}])
    traffic = GatewayTraffic.model_validate(
        {
            "parentRefs": [
                {"name": "public", "namespace": "edge"},
                {"name": "public", "sectionName": "https"},
                {"name": "public", "namespace": "ml", "sectionName": "http"},
            ]
        }
    )
    assert read(cluster, traffic) == (
        ParentGateway("edge/public", "traefik", MirrorSupport.NOT_LISTED),
        ParentGateway("ml/public", "envoy", MirrorSupport.LISTED),
    )
