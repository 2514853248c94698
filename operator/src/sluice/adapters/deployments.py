"""Serving Deployments as read: what the core needs to know of one (`workload_state`), and the server-side apply
ownership of its replicas when its HPA sets them.

Server-side apply removes a field that a manager applied before and applies no more. Were sluice's field manager
still an owner of spec.replicas when it first applies an autoscaled Deployment without them, the field would be
removed and the Deployment reset to 1 replica. So, first, a second manager (`replicas_manager`) applies the current
count (the Kubernetes documentation's "transferring ownership"): it then shares the field, the main manager can
leave it out, and the HPA's writes through the scale subresource take it over from there. A new Deployment is
created with its first count under both managers, for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.core.children import VERSION_LABEL
from sluice.core.plan import WorkloadState
from sluice.core.workloads import EXPERIMENT_ANNOTATION, REVISION_ANNOTATION


def workload_state(deployment: Mapping[str, Any] | None) -> WorkloadState:
    """What the core needs to know about a serving Deployment."""
    if deployment is None:
        return WorkloadState()
    metadata, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    ready = int(status.get("readyReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    current = int(status.get("observedGeneration", 0)) >= int(metadata.get("generation", 0))
    deadline_exceeded = any(
        condition.get("type") == "Progressing"
        and condition.get("status") == "False"
        and condition.get("reason") == "ProgressDeadlineExceeded"
        for condition in status.get("conditions", [])
    )
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    return WorkloadState(
        exists=True,
        version=labels.get(VERSION_LABEL),
        revision=(metadata.get("annotations") or {}).get(REVISION_ANNOTATION),
        experiment=(metadata.get("annotations") or {}).get(EXPERIMENT_ANNOTATION),
        replicas=replicas,
        pods=total,
        updated_replicas=updated,
        ready_replicas=ready,
        available=current and updated == replicas and ready == replicas and available == replicas and total == replicas,
        progress_deadline_exceeded=deadline_exceeded,
    )


def replicas_manager(field_manager: str) -> str:
    """The field manager under which sluice sets an autoscaled Deployment's replicas (at creation, at promotion)."""
    return f"{field_manager}-replicas"


def owns_replicas(deployment: Mapping[str, Any], field_manager: str) -> bool:
    """Whether `field_manager` applied spec.replicas of the Deployment (its managedFields say so)."""
    for entry in deployment.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != field_manager or entry.get("operation") != "Apply" or entry.get("subresource"):
            continue
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


def replicas_of(deployment: Mapping[str, Any] | None) -> int:
    """spec.replicas of a Deployment as read (0 when it does not exist)."""
    return 0 if deployment is None else int((deployment.get("spec") or {}).get("replicas", 1))


def replicas_patch(deployment: Mapping[str, Any], replicas: int, resource_version: str | None = None) -> dict[str, Any]:
    """An apply configuration of only the Deployment's replicas; with a resourceVersion, valid only as of it."""
    metadata = deployment["metadata"]
    identity = {"name": metadata["name"], "namespace": metadata["namespace"]}
    if resource_version is not None:
        identity["resourceVersion"] = resource_version
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": identity, "spec": {"replicas": replicas}}
