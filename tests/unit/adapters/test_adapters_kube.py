"""Pure parts of the Kubernetes adapter: reading Deployments, skipping unchanged applies, manual actions."""

from __future__ import annotations

import copy
from typing import Any

from sluice.adapters.deployments import workload_state
from sluice.adapters.kube import is_controlled_by, needs_apply, object_path
from sluice.api.v1alpha1 import Action, GatewayTraffic, ModelDeploymentStatus
from sluice.core.children import Owner, http_route, with_spec_hash
from sluice.core.plan import ActionRequest, WorkloadState
from sluice.reconciler import requested_action


def deployment(*, generation: int = 2, observed: int = 2, replicas: int = 2, **status: Any) -> dict[str, Any]:
    counts = {
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    return {
        "metadata": {"name": "fraud-stable", "generation": generation},
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"sluice.dev/version": "1.4.0"}}}},
        "status": {"observedGeneration": observed, **counts, **status},
    }


def test_a_missing_deployment_is_an_empty_state() -> None:
    assert workload_state(None) == WorkloadState()


def test_a_rolled_out_deployment_is_available() -> None:
    assert workload_state(deployment()) == WorkloadState(
        exists=True, version="1.4.0", replicas=2, pods=2, updated_replicas=2, ready_replicas=2, available=True
    )


def test_a_deployment_is_not_available_until_its_controller_saw_the_generation_and_old_pods_left() -> None:
    assert not workload_state(deployment(observed=1)).available
    assert not workload_state(deployment(readyReplicas=1)).available
    surging = deployment()
    surging["status"]["replicas"] = 3
    assert not workload_state(surging).available


def test_progress_deadline_exceeded_comes_from_the_progressing_condition() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    assert workload_state(deployment(conditions=[condition])).progress_deadline_exceeded


def test_apply_is_skipped_only_when_the_observed_child_carries_the_desired_hash() -> None:
    desired = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fraud"}, "spec": {"type": "ClusterIP"}}
    assert needs_apply(desired, None)
    assert not needs_apply(desired, with_spec_hash(desired))
    changed = {**desired, "spec": {"type": "NodePort"}}
    assert needs_apply(changed, with_spec_hash(desired))


def test_a_child_whose_replicas_selector_or_weights_someone_changed_is_applied_again() -> None:
    owner = Owner(name="fraud", namespace="ml", uid="u1")
    route = http_route(owner, GatewayTraffic.model_validate({"parentRefs": [{"name": "public"}]}), 20)
    applied = with_spec_hash(route)
    defaulted = copy.deepcopy(applied)  # what the API server returns: defaults filled in, nothing else changed
    for ref in defaulted["spec"]["rules"][0]["backendRefs"]:
        ref.update(group="", kind="Service")
    assert not needs_apply(route, defaulted)
    edited = copy.deepcopy(defaulted)
    edited["spec"]["rules"][0]["backendRefs"][1]["weight"] = 100
    assert needs_apply(route, edited)
    widened = copy.deepcopy(defaulted)
    widened["spec"]["rules"][0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert needs_apply(route, widened)

    deployment = {"kind": "Deployment", "metadata": {}, "spec": {"replicas": 2}}
    scaled = with_spec_hash(deployment)
    assert not needs_apply(deployment, scaled)
    scaled["spec"] = {"replicas": 5}
    assert needs_apply(deployment, scaled)

    service = {"kind": "Service", "metadata": {}, "spec": {"selector": {"track": "stable"}}}
    reselected = with_spec_hash(service)
    reselected["spec"] = {"selector": {"track": "canary"}, "clusterIP": "10.96.0.7"}
    assert needs_apply(service, reselected)


def test_control_is_by_owner_uid() -> None:
    owner = Owner(name="fraud", namespace="ml", uid="u1")
    ours = {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}}
    theirs = {"metadata": {"ownerReferences": [{"uid": "u2", "controller": True}]}}
    assert is_controlled_by(ours, owner)
    assert not is_controlled_by(theirs, owner)
    assert not is_controlled_by({"metadata": {}}, owner)


def test_object_paths() -> None:
    assert object_path("apps/v1", "Deployment", "ml", "a") == "/apis/apps/v1/namespaces/ml/deployments/a"
    assert object_path("v1", "Event", "ml") == "/api/v1/namespaces/ml/events"
    assert object_path("sluice.dev/v1alpha1", "ModelDeployment", "ml", "a") == (
        "/apis/sluice.dev/v1alpha1/namespaces/ml/modeldeployments/a"
    )


def test_a_manual_action_is_requested_once_per_id() -> None:
    annotations = {"sluice.dev/action": "promote", "sluice.dev/action-id": "r1"}
    assert requested_action(annotations, ModelDeploymentStatus()) == ActionRequest(
        action=Action.PROMOTE, request_id="r1"
    )
    assert requested_action(annotations, ModelDeploymentStatus(last_handled_action_id="r1")) is None
    assert requested_action({"sluice.dev/action": "promote"}, ModelDeploymentStatus()) is None
    unknown = {"sluice.dev/action": "explode", "sluice.dev/action-id": "r2"}
    assert requested_action(unknown, ModelDeploymentStatus()) is None
