"""The chart's ValidatingAdmissionPolicies on the real kube-apiserver (issue #14, finding 9): only the named
groups may request promote-full, and the operator's ServiceAccount may write only sluice's own children (labelled,
controlled by a ModelDeployment) in namespaces labelled for models. Users are impersonated with kubectl's --as."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import create_namespace, delete_namespace, unique_name
from harness.control_plane import ControlPlane
from integration.sluice_crd import install_crd
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from unit.chart.chart_support import CHART_DIR, of_kind, render, the_one

pytestmark = pytest.mark.integration

HARDENED = CHART_DIR / "ci" / "hardened-values.yaml"
MODELS_LABEL = "sluice.dev/models"
POLICY_ACTIVE_TIMEOUT = 120.0
"""How long a new policy may take to reach the API server's admission chain (seconds when quiet, more under load)."""


@dataclass(frozen=True)
class Policies:
    control_plane: ControlPlane
    models: str
    """A namespace labelled for models."""
    unlabelled: str
    operator: str
    """The operator ServiceAccount's user name."""
    workdir: Path

    def kubectl_as(self, user: str, *args: str, groups: tuple[str, ...] = ()) -> tuple[bool, str]:
        """Run kubectl as `user` (in `groups`); whether the server allowed it, and its output or error."""
        impersonation = [f"--as={user}", *(f"--as-group={group}" for group in groups)]
        try:
            return True, self.control_plane.kubectl(*impersonation, *args)
        except RuntimeError as error:
            return False, str(error)

    def manifest(self, name: str, body: dict[str, Any]) -> str:
        path = self.workdir / f"{name}-{unique_name('m')}.json"
        path.write_text(json.dumps(body))
        return str(path)

    def annotate(self, user: str, action: str, request_id: str, groups: tuple[str, ...] = ()) -> tuple[bool, str]:
        annotations = [f"{GROUP}/action={action}", f"{GROUP}/action-id={request_id}"]
        return self.kubectl_as(
            user,
            "annotate",
            f"{PLURAL}.{GROUP}",
            "fraud",
            *annotations,
            "--overwrite",
            "-n",
            self.models,
            groups=groups,
        )


def until_denied(attempt: Any) -> tuple[bool, str]:
    """Retry `attempt` until the server denies it (a new policy takes a moment to load), for POLICY_ACTIVE_TIMEOUT."""
    deadline = time.monotonic() + POLICY_ACTIVE_TIMEOUT
    while True:
        allowed, output = attempt()
        if not allowed or time.monotonic() > deadline:
            return allowed, output
        time.sleep(0.5)


@pytest.fixture(scope="module")
def policies(
    control_plane: ControlPlane, kube_api_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Policies]:
    install_crd(control_plane)
    models = create_namespace(kube_api_client, prefix="vap-models", labels={MODELS_LABEL: "true"})
    unlabelled = create_namespace(kube_api_client, prefix="vap-other")
    release = unique_name("vap")
    rendered = render(values_files=[HARDENED], namespace=models, release=release)
    account = the_one(rendered, "ServiceAccount")["metadata"]["name"]
    operator = f"system:serviceaccount:{models}:{account}"
    rules = [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "patch"]},
    ]
    writer: dict[str, Any] = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "rules": rules}
    writer["metadata"] = {"name": release}
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": release, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": release},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                for user in ("alice", "bob", operator)
            ],
        }
        for namespace in (models, unlabelled)
    ]
    workdir = tmp_path_factory.mktemp("vap")
    policy_objects = of_kind(rendered, "ValidatingAdmissionPolicy") + of_kind(
        rendered, "ValidatingAdmissionPolicyBinding"
    )
    assert len(policy_objects) == 4
    installed = workdir / "policies.yaml"
    installed.write_text(yaml.safe_dump_all([writer, *bindings, *policy_objects]))
    control_plane.kubectl("apply", "-f", str(installed))
    md: dict[str, Any] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": "fraud"}}
    md["spec"] = {"model": {"version": "1", "uri": "https://models.example.com/m.onnx", "format": "onnx"}}
    md["metadata"]["namespace"] = models
    (workdir / "md.json").write_text(json.dumps(md))
    control_plane.kubectl("create", "-f", str(workdir / "md.json"))
    try:
        yield Policies(control_plane, models, unlabelled, operator, workdir)
    finally:
        control_plane.kubectl("delete", "-f", str(installed), "--ignore-not-found")
        delete_namespace(kube_api_client, models)
        delete_namespace(kube_api_client, unlabelled)


def test_only_the_named_groups_may_request_promote_full(policies: Policies) -> None:
    # each probe is a new request (a new id): once an early probe passed before the policy was loaded, repeating
    # the same request would be an unchanged annotation, which the policy rightly lets through
    probes = (f"probe-{n}" for n in itertools.count())
    allowed, output = until_denied(lambda: policies.annotate("bob", "promote-full", next(probes)))
    assert not allowed
    assert "only members of ml-leads may set sluice.dev/action=promote-full" in output, output
    assert policies.annotate("bob", "promote", "2")[0], "any editor may still promote one step"
    assert policies.annotate("alice", "promote-full", "3", groups=("ml-leads",))[0]
    still = policies.kubectl_as("bob", "annotate", f"{PLURAL}.{GROUP}", "fraud", "note=x", "-n", policies.models)
    assert still[0], f"other edits of an object carrying an earlier request pass: {still[1]}"
    assert not policies.annotate("bob", "promote-full", "4")[0], "a new request id is a new request"


def _deployment(name: str, namespace: str, owner_uid: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner_uid is not None:
        metadata["labels"] = {"app.kubernetes.io/managed-by": "sluice"}
        metadata["ownerReferences"] = [
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "name": "fraud", "uid": owner_uid,
             "controller": True}
        ]  # fmt: skip
    labels = {"app": name}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "example.com/x:1"}]}}
    spec = {"replicas": 0, "selector": {"matchLabels": labels}, "template": pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def test_the_operators_service_account_may_write_only_sluices_children_in_labelled_namespaces(
    policies: Policies,
) -> None:
    uid = policies.control_plane.kubectl(
        "get", f"{PLURAL}.{GROUP}", "fraud", "-n", policies.models, "-o", "jsonpath={.metadata.uid}"
    )
    as_operator = policies.operator

    def create(name: str, namespace: str, owner: str | None) -> tuple[bool, str]:
        return policies.kubectl_as(
            as_operator, "create", "-f", policies.manifest(name, _deployment(name, namespace, owner))
        )

    allowed, output = until_denied(lambda: create(unique_name("foreign"), policies.models, None))
    assert not allowed
    assert "may only write children labelled as sluice's" in output, output
    assert create("fraud-stable", policies.models, uid)[0], "its own child is allowed"
    policies.control_plane.kubectl(
        "create", "-f", policies.manifest("victim", _deployment("victim", policies.models, None))
    )
    patch = '{"spec":{"replicas":3}}'
    victim = ("deployment", "victim", "-n", policies.models)
    assert not policies.kubectl_as(as_operator, "patch", *victim, "-p", patch)[0]
    assert not policies.kubectl_as(as_operator, "delete", *victim)[0]
    assert policies.kubectl_as(as_operator, "delete", "deployment", "fraud-stable", "-n", policies.models)[0]
    outside, why = create("fraud-stable", policies.unlabelled, uid)
    assert not outside
    assert f"only write in namespaces labelled {MODELS_LABEL}=true" in why, why

    def event(kind: str) -> tuple[bool, str]:
        about = {"apiVersion": f"{GROUP}/{VERSION}" if kind == "ModelDeployment" else "v1", "kind": kind}
        about |= {"name": "fraud", "namespace": policies.models}
        body = {"apiVersion": "v1", "kind": "Event", "involvedObject": about, "reason": "Test", "type": "Normal"}
        body["metadata"] = {"name": unique_name("e"), "namespace": policies.models}
        return policies.kubectl_as(as_operator, "create", "-f", policies.manifest("event", body))

    assert event("ModelDeployment")[0]
    denied, message = event("Pod")
    assert not denied
    assert "may only post Events about ModelDeployments" in message, message
