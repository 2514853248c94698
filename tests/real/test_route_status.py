"""A real Gateway controller (Traefik on the real node) writes HTTPRoute status the way the operator's reading
(`adapters.world.route_reading`, behind the RouteAccepted condition) expects: a route to the Gateway is accepted
by its one parent, and a route to a Gateway that does not exist gets no status (a silent parent)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from kubernetes import client

from harness import new_api_client, wait_until
from real.support import RealCluster
from sluice.adapters.world import route_reading
from sluice.core.plan import RouteReading

pytestmark = pytest.mark.real


def route(name: str, parent: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [parent],
            "hostnames": [f"{name}.route-status.example"],
            "rules": [{"backendRefs": [{"name": name, "port": 8080, "weight": 100}]}],
        },
    }


def test_the_real_gateway_accepts_a_route_to_it_and_says_nothing_of_a_route_to_a_missing_gateway(
    real_cluster: RealCluster, real_namespace: str
) -> None:
    name, namespace = real_cluster.gateway
    with new_api_client(real_cluster.kubeconfig) as api_client:
        custom = client.CustomObjectsApi(api_client)

        def reading(route_name: str) -> RouteReading:
            body = custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", real_namespace, "httproutes", route_name
            )
            return route_reading(cast(dict[str, Any], body))

        for body in (route("served", {"name": name, "namespace": namespace}), route("orphan", {"name": "missing"})):
            custom.create_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", real_namespace, "httproutes", body
            )

        wait_until(lambda: reading("served").accepted == 1, timeout=60, what="the Gateway to accept the route")
        time.sleep(5)

        assert reading("served") == RouteReading(parents=1, accepted=1, refused=0)
        assert reading("orphan") == RouteReading(parents=1, accepted=0, refused=0)
