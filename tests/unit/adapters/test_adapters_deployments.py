"""An autoscaled Deployment's replicas under server-side apply: who owns them, and what is (not) re-applied."""

from __future__ import annotations

from typing import Any

from sluice.adapters.deployments import owns_replicas, replicas_patch
from sluice.adapters.kube import needs_apply
from sluice.core.children import with_spec_hash


def managed(manager: str, operation: str = "Apply", subresource: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
    }
    if subresource is not None:
        entry["subresource"] = subresource
    return entry


def deployment(*entries: dict[str, Any], replicas: int | None = 3) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {}} if replicas is None else {"replicas": replicas, "template": {}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud-stable", "namespace": "ml", "resourceVersion": "42", "managedFields": [*entries]},
        "spec": spec,
    }


def test_sluice_owns_the_replicas_only_while_its_own_apply_set_them() -> None:
    assert owns_replicas(deployment(managed("sluice")), "sluice")
    assert not owns_replicas(deployment(managed("sluice-replicas")), "sluice")
    assert not owns_replicas(deployment(managed("kube-controller-manager", "Update", "scale")), "sluice")
    assert not owns_replicas(deployment({"manager": "sluice", "operation": "Apply", "fieldsV1": {}}), "sluice")


def test_a_raise_of_the_replicas_is_valid_only_as_of_the_version_read() -> None:
    assert replicas_patch(deployment(), 5, "42") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud-stable", "namespace": "ml", "resourceVersion": "42"},
        "spec": {"replicas": 5},
    }


def test_an_autoscaled_deployment_whose_replicas_someone_else_changed_is_not_applied_again() -> None:
    desired = deployment(replicas=None)
    desired["metadata"].pop("managedFields")
    observed = with_spec_hash(desired)
    observed["spec"] = {**observed["spec"], "replicas": 7}

    assert not needs_apply(desired, observed)
    assert needs_apply(deployment(replicas=3), with_spec_hash(deployment(replicas=3)) | {"spec": {"replicas": 7}})
