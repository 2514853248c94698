"""spec.serving's pod fields on the real API server: what Pod Security `restricted` forbids is refused at admission
naming its path, every field the spec may set is kept as written and reaches the serving pod template, and a
Secret the pod references is never read by the operator (it runs under the documented RBAC, which has no Secrets
access, behind the proxy that records every request it sends)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness import wait_until
from integration.operator_support import CountingProxy
from integration.test_crd_validation import BASE, Case, _create, _merged, api_client, validation_namespace
from integration.test_reconcile import ModelDeployments, md, operator
from sluice.api.v1alpha1 import ModelDeployment
from unit.core.podfields_support import EVERY_POD_FIELD, POD_SPEC_FIELDS, assert_every_pod_field_is_in

pytestmark = pytest.mark.integration

__all__ = ["api_client", "md", "operator", "validation_namespace"]  # fixtures shared with those modules


def _serving(**patch: Any) -> dict[str, Any]:
    return {"spec": {"serving": patch}}


def _env(**variable: Any) -> dict[str, Any]:
    return _serving(env=[{"name": "STORE_KEY", **variable}])


SECRET = {"name": "model-store", "key": "access-key"}
FORBIDDEN = [
    Case("host network", _serving(hostNetwork=True), "spec.serving.hostNetwork", "unknown field"),
    Case("host PID", _serving(hostPID=True), "spec.serving.hostPID", "unknown field"),
    Case("host IPC", _serving(hostIPC=True), "spec.serving.hostIPC", "unknown field"),
    Case("a privileged container", _serving(privileged=True), "spec.serving.privileged", "unknown field"),
    Case(
        "a security context override",
        _serving(securityContext={"runAsUser": 0}),
        "spec.serving.securityContext",
        "unknown field",
    ),
    Case("added capabilities", _serving(capabilities={"add": ["NET_ADMIN"]}), "spec.serving.capabilities", "unknown"),
    Case(
        "a hostPath volume",
        _serving(volumes=[{"name": "host", "hostPath": {"path": "/"}}]),
        "spec.serving.volumes",
        "unknown field",
    ),
    Case("a host port", _serving(ports=[{"containerPort": 80, "hostPort": 80}]), "spec.serving.ports", "unknown"),
    Case(
        "an unconfined AppArmor profile",
        _serving(podAnnotations={"container.apparmor.security.beta.kubernetes.io/server": "unconfined"}),
        "spec.serving.podAnnotations",
        "AppArmor or seccomp",
    ),
    Case(
        "a seccomp annotation",
        _serving(podAnnotations={"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}),
        "spec.serving.podAnnotations",
        "AppArmor or seccomp",
    ),
    Case(
        "a pod label the track selectors use",
        _serving(podLabels={"sluice.dev/track": "stable"}),
        "spec.serving.podLabels",
        "may not set the operator's labels",
    ),
    Case(
        "the operator's managed-by label",
        _serving(podLabels={"app.kubernetes.io/managed-by": "me"}),
        "spec.serving.podLabels",
        "may not set the operator's labels",
    ),
    Case(
        "valueFrom with two sources",
        _env(valueFrom={"secretKeyRef": SECRET, "configMapKeyRef": SECRET}),
        "spec.serving.env[0].valueFrom",
        "exactly one of secretKeyRef, configMapKeyRef, fieldRef",
    ),
    Case(
        "value and valueFrom",
        _env(value="x", valueFrom={"secretKeyRef": SECRET}),
        "spec.serving.env[0].valueFrom",
        "value and valueFrom are exclusive",
    ),
    Case(
        "a fieldRef outside the downward API's env fields",
        _env(valueFrom={"fieldRef": {"fieldPath": "spec.containers[0].image"}}),
        "spec.serving.env[0].valueFrom.fieldRef.fieldPath",
        "should match",
    ),
    Case(
        "envFrom with a Secret and a ConfigMap",
        _serving(envFrom=[{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]),
        "spec.serving.envFrom[0]",
        "exactly one of secretRef, configMapRef",
    ),
    Case("a ServiceAccount name with a slash", _serving(serviceAccountName="a/b"), "spec.serving.serviceAccountName"),
    Case(
        "an unknown taint effect",
        _serving(tolerations=[{"key": "gpu", "effect": "NoRun"}]),
        "spec.serving.tolerations[0].effect",
        "supported values",
    ),
    Case(
        "too many tolerations",
        _serving(tolerations=[{"key": f"k{i}", "operator": "Exists"} for i in range(17)]),
        "spec.serving.tolerations",
        "at most 16 items",
    ),
    Case(
        "a grace period above an hour",
        _serving(terminationGracePeriodSeconds=3601),
        "spec.serving.terminationGracePeriodSeconds",
        "less than or equal to 3600",
    ),
]


@pytest.mark.parametrize("case", FORBIDDEN, ids=[case.id for case in FORBIDDEN])
def test_the_server_refuses_a_pod_field_restricted_forbids_naming_its_path(
    api_client: Any, validation_namespace: str, case: Case
) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as raised:
        _create(api_client, validation_namespace, _merged(BASE, case.patch), dry_run=True)
    status, body = raised.value.status, raised.value.body or ""
    assert status in {400, 422}, body
    assert case.field in body, f"{case.field!r} not named in the rejection: {body}"
    assert case.says in body, f"{case.says!r} not in the rejection: {body}"


def test_every_pod_field_is_admitted_and_kept_as_written(api_client: Any, validation_namespace: str) -> None:
    manifest = _merged(BASE, {"metadata": {"name": "every-pod-field"}, "spec": {"serving": EVERY_POD_FIELD}})

    created = _create(api_client, validation_namespace, copy.deepcopy(manifest), dry_run=True)

    kept = created["spec"]["serving"]
    assert kept == ModelDeployment.model_validate(manifest).spec.to_wire()["serving"]
    assert {key: kept[key] for key in POD_SPEC_FIELDS} == {key: EVERY_POD_FIELD[key] for key in POD_SPEC_FIELDS}


def test_every_pod_field_reaches_the_pod_template_and_the_operator_never_reads_the_secret(
    md: ModelDeployments, proxy: CountingProxy, kube_api_client: ApiClient
) -> None:
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="model-store"), string_data={"access-key": "k"})
    client.CoreV1Api(kube_api_client).create_namespaced_secret(md.namespace, secret)
    proxy.reset()
    spec = copy.deepcopy(BASE["spec"]) | {"serving": EVERY_POD_FIELD}

    md.create("gpu", spec)
    wait_until(lambda: md.deployment("gpu-stable") is not None, timeout=60, what="the stable Deployment")

    deployment = md.deployment("gpu-stable")
    assert deployment is not None
    assert_every_pod_field_is_in(deployment["spec"]["template"])
    assert not [request for request in proxy.requests() if "/secrets" in request.path], proxy.requests()
