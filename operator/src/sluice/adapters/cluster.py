"""The `Cluster` seam under the reconciler: everything it reads from and writes to Kubernetes, as a protocol.

`adapters.kube.KubeCluster` is the real one; the unit tests run the reconciler on an in-memory one. A child the
cluster will not take (its name held by another owner, or rejected by the API server with 422) raises a
`ChildError`, which the reconciler reports on the status instead of retrying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sluice.api.v1alpha1 import ModelDeploymentStatus
from sluice.core.children import Owner
from sluice.core.plan import EventRecord


class ChildError(Exception):
    """A child the cluster will not take as desired; retrying the same spec cannot help."""


class ChildConflictError(ChildError):
    """A child's name is taken by an object that this ModelDeployment does not control."""


class ChildRejectedError(ChildError):
    """The API server rejected a child (422): a spec the CRD admits can still make a child another API refuses
    (e.g. an HTTPRoute's CEL rules on parentRefs)."""


@dataclass(frozen=True)
class ObservedWorkloads:
    """The two serving Deployments as read (None when absent)."""

    stable: dict[str, Any] | None
    canary: dict[str, Any] | None


class Cluster(Protocol):
    """What the reconciler does to the cluster: reads, applies, status writes and Events."""

    async def read_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelDeployment as stored, or None when it does not exist."""

    async def read_workloads(self, owner: Owner) -> ObservedWorkloads:
        """The stable and canary Deployments; ChildConflictError when another owner holds their names."""

    async def read_child(self, api_version: str, kind: str, owner: Owner, name: str) -> dict[str, Any] | None:
        """A child as read; ChildConflictError when its name is taken by an object this owner does not control."""

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None:
        """A ConfigMap key's text; None when the ConfigMap or the key is missing."""

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The pods matching a label selector (read-only; an ApiException 403 when RBAC forbids it)."""

    async def read_gateway(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Gateway (gateway.networking.k8s.io), or None when it (or the Gateway API) does not exist; raises
        ApiException otherwise (403 when the operator may not read it)."""

    async def read_gateway_class(self, name: str) -> dict[str, Any] | None:
        """A GatewayClass (cluster-scoped), or None when it does not exist; raises ApiException otherwise."""

    async def apply(self, desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
        """Apply `desired` unless `observed` already matches it; True when it wrote. ChildRejectedError on 422."""

    async def apply_autoscaled(
        self, desired: Mapping[str, Any], observed: Mapping[str, Any] | None, floor: int
    ) -> bool:
        """Apply a Deployment whose replicas its HPA sets (`desired` has none), raising them to `floor` when it runs
        fewer (0: no floor) and never lowering them; True when it wrote."""

    async def apply_child(self, desired: Mapping[str, Any], owner: Owner) -> bool:
        """Read the child, then apply it when it differs; True when it wrote."""

    async def delete_child(self, api_version: str, kind: str, owner: Owner, name: str) -> bool:
        """Delete a child this owner controls, if it exists; True when it deleted."""

    async def write_status(self, body: Mapping[str, Any], status: ModelDeploymentStatus) -> bool:
        """Write the complete status when it differs from the one in `body`; True when it wrote. A stale `body`
        fails with a conflict (409)."""

    async def post_event(self, body: Mapping[str, Any], record: EventRecord, now: datetime) -> None:
        """A core/v1 Event about the ModelDeployment in `body`, stamped `now`."""
