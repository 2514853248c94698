"""Traffic routers: how the canary's share of requests is set and read (after Flagger's router.Interface).

`GatewayAPIRouter` weights the backendRefs of an HTTPRoute it owns (the last rule; the rules before it send the
requests of spec.rollout.match to the canary alone); `ReplicaRatioRouter` leaves weights to the
replica counts behind one Service. Another mesh (Istio's VirtualService, for one) is another class with the
same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sluice.adapters.cluster import Cluster
from sluice.api.v1alpha1 import GatewayTraffic, ModelDeploymentSpec, RouteMatch
from sluice.core.children import GATEWAY_API_VERSION, ChildNames, Owner, http_route


class TrafficRouter(Protocol):
    """Sets and reads the percentage of requests that reach the canary."""

    async def set_weight(
        self, owner: Owner, canary_weight: int, mirror_percent: int = 0, matches: Sequence[RouteMatch] = ()
    ) -> None:
        """Make the canary receive `canary_weight` percent of requests, a copy of `mirror_percent` percent (its
        answers discarded) and every request one of `matches` selects; a router that can neither mirror nor match
        ignores them (shadow and match need spec.traffic.gateway)."""

    async def get_weight(self, owner: Owner) -> int | None:
        """The canary's effective percentage of requests, None when there is nothing to route."""


def _percent(canary: int, stable: int) -> int | None:
    total = canary + stable
    return None if total <= 0 else round(100 * canary / total)


class GatewayAPIRouter:
    """A Gateway API HTTPRoute `<name>` splitting requests by backendRef weights."""

    def __init__(self, cluster: Cluster, gateway: GatewayTraffic) -> None:
        self._cluster = cluster
        self._gateway = gateway

    async def set_weight(
        self, owner: Owner, canary_weight: int, mirror_percent: int = 0, matches: Sequence[RouteMatch] = ()
    ) -> None:
        route = http_route(owner, self._gateway, canary_weight, mirror_percent, matches)
        await self._cluster.apply_child(route, owner)

    async def get_weight(self, owner: Owner) -> int | None:
        route = await self._cluster.read_child(GATEWAY_API_VERSION, "HTTPRoute", owner, ChildNames.of(owner.name).route)
        if route is None:
            return None
        names = ChildNames.of(owner.name)
        rules = route.get("spec", {}).get("rules") or [{}]
        weights = {ref.get("name"): int(ref.get("weight", 1)) for ref in rules[-1].get("backendRefs", [])}
        return _percent(weights.get(names.canary_service, 0), weights.get(names.service, 0))


class ReplicaRatioRouter:
    """One Service over both tracks: the canary's share is its share of ready pods, which the replicas set.

    Setting a weight only removes an HTTPRoute left from an earlier `spec.traffic.gateway`.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def set_weight(
        self, owner: Owner, canary_weight: int, mirror_percent: int = 0, matches: Sequence[RouteMatch] = ()
    ) -> None:
        await self._cluster.delete_child(GATEWAY_API_VERSION, "HTTPRoute", owner, ChildNames.of(owner.name).route)

    async def get_weight(self, owner: Owner) -> int | None:
        workloads = await self._cluster.read_workloads(owner)
        return _percent(_ready(workloads.canary), _ready(workloads.stable))


def _ready(deployment: dict[str, Any] | None) -> int:
    return int((deployment or {}).get("status", {}).get("readyReplicas", 0))


def router_for(cluster: Cluster, spec: ModelDeploymentSpec) -> TrafficRouter:
    """The router `spec.traffic` asks for."""
    if spec.traffic is not None and spec.traffic.gateway is not None:
        return GatewayAPIRouter(cluster, spec.traffic.gateway)
    return ReplicaRatioRouter(cluster)
