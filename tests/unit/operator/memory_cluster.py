"""An in-memory `Cluster` (sluice.adapters.cluster) for unit tests of the reconciler: objects in dicts, resource
versions that make a stale status write fail with 409, children applied as desired, Events collected."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.adapters.cluster import ChildConflictError, ChildRejectedError, ObservedWorkloads
from sluice.adapters.deployments import replicas_of
from sluice.adapters.kube import is_controlled_by, needs_apply, parse_status
from sluice.api.v1alpha1 import API_VERSION, KIND, ModelDeploymentStatus
from sluice.core.children import ChildNames, Owner, with_spec_hash
from sluice.core.plan import EventRecord

ObjectKey = tuple[str, str, str]
"""(kind, namespace, name)."""


@dataclass
class MemoryCluster:
    """Objects by (kind, namespace, name; "" for cluster-scoped ones); `rejected_kinds` are refused as the API
    server refuses a 422 child; reading one of `forbidden_kinds` fails with 403 as RBAC refuses it."""

    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    rejected_kinds: set[str] = field(default_factory=set)
    forbidden_kinds: set[str] = field(default_factory=set)
    writes: list[str] = field(default_factory=list)
    """`<verb> <kind>/<name>` of every write, in order."""
    gateways: set[tuple[str, str]] = field(default_factory=set)
    """Gateways (namespace, name) that exist: an HTTPRoute applied is Accepted by these parents, as a Gateway
    controller writes it; a parent not among them writes no status."""
    _versions: int = 0

    def add_model_deployment(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        metadata = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1}
        self.put({"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": dict(spec)})

    def put(self, body: dict[str, Any]) -> None:
        """Store `body` (created or replaced by someone other than the operator), with a new resourceVersion."""
        self._versions += 1
        body["metadata"]["resourceVersion"] = str(self._versions)
        metadata = body["metadata"]
        self.objects[(body["kind"], metadata["namespace"], metadata["name"])] = body

    def add_gateway(self, namespace: str, name: str, gateway_class: str) -> None:
        metadata = {"name": name, "namespace": namespace}
        self.put({"kind": "Gateway", "metadata": metadata, "spec": {"gatewayClassName": gateway_class}})

    def add_gateway_class(self, name: str, supported_features: list[Any] | None) -> None:
        """A GatewayClass whose status lists `supported_features` (None: no supportedFeatures in its status)."""
        status = {} if supported_features is None else {"supportedFeatures": supported_features}
        self.put({"kind": "GatewayClass", "metadata": {"name": name, "namespace": ""}, "status": status})

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def status(self, namespace: str, name: str) -> ModelDeploymentStatus:
        body = self.get(KIND, namespace, name)
        assert body is not None
        return parse_status(body)

    def make_available(self, namespace: str, name: str) -> None:
        """The Deployment's pods all ready, as the Deployment controller reports it."""
        deployment = self.objects[("Deployment", namespace, name)]
        replicas = deployment["spec"]["replicas"]
        deployment["metadata"]["generation"] = 1
        deployment["status"] = {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }

    # --- the Cluster protocol -----------------------------------------------------------------------------------

    async def read_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(KIND, namespace, name)

    async def read_workloads(self, owner: Owner) -> ObservedWorkloads:
        names = ChildNames.of(owner.name)
        return ObservedWorkloads(
            stable=await self.read_child("apps/v1", "Deployment", owner, names.stable_deployment),
            canary=await self.read_child("apps/v1", "Deployment", owner, names.canary_deployment),
        )

    async def read_child(self, api_version: str, kind: str, owner: Owner, name: str) -> dict[str, Any] | None:
        observed = self.get(kind, owner.namespace, name)
        if observed is not None and not is_controlled_by(observed, owner):
            raise ChildConflictError(f"{kind} {owner.namespace}/{name} exists and is not controlled by {owner.name}")
        return observed

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None:
        config_map = self.get("ConfigMap", namespace, name) or {}
        value = (config_map.get("data") or {}).get(key)
        return value if isinstance(value, str) else None

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in selector.split(","))
        return [
            copy.deepcopy(body)
            for (kind, pod_namespace, _), body in self.objects.items()
            if kind == "Pod"
            and pod_namespace == namespace
            and wanted.items() <= (body["metadata"].get("labels") or {}).items()
        ]

    def _readable(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind in self.forbidden_kinds:
            raise ApiException(status=403, reason="Forbidden")
        return self.get(kind, namespace, name)

    async def read_gateway(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._readable("Gateway", namespace, name)

    async def read_gateway_class(self, name: str) -> dict[str, Any] | None:
        return self._readable("GatewayClass", "", name)

    async def apply(self, desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
        if not needs_apply(desired, observed):
            return False
        if desired["kind"] in self.rejected_kinds:
            raise ChildRejectedError(f"the API server rejected a child: {desired['kind']} is invalid")
        applied = copy.deepcopy(with_spec_hash(desired))
        previous = self.get(desired["kind"], desired["metadata"]["namespace"], desired["metadata"]["name"])
        if previous is not None and "status" in previous:
            applied["status"] = previous["status"]
        if applied["kind"] == "HTTPRoute":
            applied["status"] = self._route_status(applied)
        self.put(applied)
        self.writes.append(f"apply {desired['kind']}/{desired['metadata']['name']}")
        return True

    def _route_status(self, route: Mapping[str, Any]) -> dict[str, Any]:
        namespace = route["metadata"]["namespace"]
        accepted = [
            {"parentRef": ref, "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}
            for ref in route["spec"].get("parentRefs", [])
            if (ref.get("namespace", namespace), ref["name"]) in self.gateways
        ]
        return {"parents": accepted}

    async def apply_autoscaled(
        self, desired: Mapping[str, Any], observed: Mapping[str, Any] | None, floor: int
    ) -> bool:
        """As server-side apply with the hand-over does it: the replicas stay whoever's they were, raised to
        `floor`."""
        key = ("Deployment", desired["metadata"]["namespace"], desired["metadata"]["name"])
        replicas = max(replicas_of(self.objects.get(key)), floor)
        wrote = await self.apply(desired, observed)
        if self.objects[key]["spec"].get("replicas") != replicas:
            self.objects[key]["spec"]["replicas"] = replicas
            self.writes.append(f"scale Deployment/{desired['metadata']['name']}")
            wrote = True
        return wrote

    async def apply_child(self, desired: Mapping[str, Any], owner: Owner) -> bool:
        observed = await self.read_child(desired["apiVersion"], desired["kind"], owner, desired["metadata"]["name"])
        return await self.apply(desired, observed)

    async def delete_child(self, api_version: str, kind: str, owner: Owner, name: str) -> bool:
        observed = self.get(kind, owner.namespace, name)
        if observed is None or not is_controlled_by(observed, owner):
            return False
        del self.objects[(kind, owner.namespace, name)]
        self.writes.append(f"delete {kind}/{name}")
        return True

    async def write_status(self, body: Mapping[str, Any], status: ModelDeploymentStatus) -> bool:
        if parse_status(body).to_wire() == status.to_wire():
            return False
        metadata = body["metadata"]
        stored = self.objects.get((KIND, metadata["namespace"], metadata["name"]))
        if stored is None:
            raise ApiException(status=404, reason="Not Found")
        if stored["metadata"]["resourceVersion"] != metadata["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        stored["status"] = status.to_wire()
        self.put(stored)
        self.writes.append(f"status {metadata['name']}")
        return True

    async def post_event(self, body: Mapping[str, Any], record: EventRecord, now: datetime) -> None:
        self.events.append(record)
