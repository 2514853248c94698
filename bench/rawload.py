"""Raw write capacity for the scale benchmark: the operator's writes for every ModelDeployment of a namespace, from
a tight loop, with nothing else (no reads of single objects, no decisions beyond the operator's own pure code).

For each ModelDeployment (created beforehand, unwatched by any operator) it makes the writes of the operator's
first reconcile, built by the operator's own code (`decide` on an empty status, the children builders): a
server-side apply of every child, then the status patch, then the plan's Events. It uses the operator's own
Kubernetes adapter (`sluice.adapters.kube.KubeCluster` over `KubeApi`: the same client, connection pool and worker
threads), all objects at once, so the only limits are those the operator has too: `write_seconds`.

Then, as an ideal controller would, it waits for the cluster (one LIST of the namespace's Deployments every
0.25 s) until every stable Deployment is available, and writes each ModelDeployment's Ready status (`decide` again,
with the Deployment available) and Events: `ready_seconds` from the first write. That is the fastest any operator
can take N ModelDeployments to Ready on this cluster. Prints one JSON line.

    python bench/rawload.py --namespace raw-100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.adapters.kube import APPLY_PATCH, KubeApi, KubeCluster, load_api_client, object_path
from sluice.api.v1alpha1 import API_VERSION, KIND, ModelDeploymentSpec, ModelDeploymentStatus
from sluice.core.children import Owner, ServingDefaults, stable_pod_selector
from sluice.core.plan import Observations, Plan, WorkloadState
from sluice.core.rollout import decide
from sluice.core.workloads import workloads
from sluice.settings import Settings


def first_plan(body: dict[str, Any], stable: WorkloadState, status: ModelDeploymentStatus) -> tuple[Plan, Owner]:
    spec = ModelDeploymentSpec.model_validate(body["spec"])
    observations = Observations(
        generation=int(body["metadata"].get("generation", 1)), stable=stable, canary=WorkloadState()
    )
    return decide(spec, status, observations, datetime.now(UTC)), Owner.from_metadata(body["metadata"])


async def write_status(api: KubeApi, body: dict[str, Any], status: ModelDeploymentStatus) -> dict[str, Any]:
    """The operator's status write (`Cluster.write_status`), returning the updated object."""
    metadata = body["metadata"]
    wire = status.model_copy(update={"selector": stable_pod_selector(metadata["name"])}).to_wire()
    return await api.request(
        "PATCH",
        object_path(API_VERSION, KIND, metadata["namespace"], metadata["name"]) + "/status",
        query={"fieldManager": "sluice", "force": "true"},
        body={"apiVersion": API_VERSION, "kind": KIND, "status": wire,
              "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                           "resourceVersion": metadata["resourceVersion"]}},
        content_type=APPLY_PATCH,
    )  # fmt: skip


async def first_writes(api: KubeApi, cluster: KubeCluster, body: dict[str, Any], defaults: ServingDefaults) -> Any:
    """The first reconcile's writes for one ModelDeployment; returns (writes, updated object, its status)."""
    plan, owner = first_plan(body, WorkloadState(), ModelDeploymentStatus())
    spec = ModelDeploymentSpec.model_validate(body["spec"])
    writes = 0
    for desired in workloads(owner, spec, plan, defaults):
        await cluster.apply(desired, None)
        writes += 1
    updated = await write_status(api, body, plan.status)
    writes += 1
    for record in plan.events:
        await cluster.post_event(body, record, datetime.now(UTC))
        writes += 1
    return writes, updated, plan.status


async def ready_writes(api: KubeApi, cluster: KubeCluster, body: dict[str, Any], status: ModelDeploymentStatus) -> int:
    """The reconcile after the stable Deployment became available: the Ready status and its Events."""
    spec = ModelDeploymentSpec.model_validate(body["spec"])
    stable = WorkloadState(exists=True, version=spec.model.version, replicas=spec.replicas,
                           updated_replicas=spec.replicas, ready_replicas=spec.replicas, available=True)  # fmt: skip
    plan, _ = first_plan(body, stable, status)
    await write_status(api, body, plan.status)
    for record in plan.events:
        await cluster.post_event(body, record, datetime.now(UTC))
    return 1 + len(plan.events)


def available(deployment: dict[str, Any]) -> bool:
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    return int(status.get("availableReplicas", 0)) >= int(spec.get("replicas", 1))


async def run(namespace: str) -> dict[str, Any]:
    settings = Settings()
    api = KubeApi(load_api_client(), settings.kube_timeout)
    cluster = KubeCluster(api, settings.field_manager)
    listed = await api.request("GET", object_path(API_VERSION, KIND, namespace))
    bodies: list[dict[str, Any]] = listed["items"]
    defaults = settings.serving_defaults()
    started = time.monotonic()
    firsts = await asyncio.gather(*(first_writes(api, cluster, body, defaults) for body in bodies))
    write_seconds = time.monotonic() - started
    writes = sum(w for w, _, _ in firsts)
    deployments = object_path("apps/v1", "Deployment", namespace)
    while True:
        items = (await api.request("GET", deployments))["items"]
        if len(items) >= len(bodies) and sum(1 for d in items if available(d)) >= len(bodies):
            break
        await asyncio.sleep(0.25)
    writes += sum(await asyncio.gather(*(ready_writes(api, cluster, body, status) for _, body, status in firsts)))
    ready_seconds = time.monotonic() - started
    return {"objects": len(bodies), "first_writes": sum(w for w, _, _ in firsts), "write_seconds": write_seconds,
            "writes": writes, "ready_seconds": ready_seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    try:
        print(json.dumps(asyncio.run(run(args.namespace))))
    except ApiException as error:
        raise SystemExit(f"rawload: {error.status} {error.reason}") from None


if __name__ == "__main__":
    main()
