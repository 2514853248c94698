"""The Helm chart on the real local control plane: it installs into a Pod Security `restricted` namespace, its
ServiceAccount holds exactly the reviewed permissions, and the operator, running with that ServiceAccount's token
(not admin), brings a ModelDeployment in a restricted namespace to Ready."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from harness import create_namespace, delete_namespace, new_api_client, unique_name, wait_until
from harness.control_plane import ControlPlane
from harness.gateway_standin import GATEWAY_CLASS, create_gateway
from integration.chart_identity import (
    ChartInstall,
    install_chart,
    operator_log,
    running_operator,
    service_account_kubeconfig,
)
from sluice.adapters.kube import KubeApi, KubeCluster
from sluice.adapters.mirror_support import parent_gateways
from sluice.api.v1alpha1 import GatewayTraffic
from sluice.core.plan import MirrorSupport, ParentGateway
from unit.chart.chart_support import (
    NOTIFICATION_SECRET,
    REPO_ROOT,
    REVIEWED_CLUSTER_RULES,
    REVIEWED_NAMESPACED_RULES,
    REVIEWED_NOTIFICATION_RULES,
    Permission,
    helm,
    of_kind,
    reviewed_permissions,
    rule_permissions,
    template_args,
)

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def granted_permissions(kubeconfig: Path, namespace: str) -> set[Permission]:
    """What the kubeconfig's user may do in `namespace` (namespaced and cluster-wide rules): SelfSubjectRulesReview."""
    from kubernetes import client

    with new_api_client(kubeconfig) as api_client:
        review = client.AuthorizationV1Api(api_client).create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace))
        )
    status = review.status
    assert status is not None
    assert not status.incomplete, status.evaluation_error
    return rule_permissions(
        {
            "apiGroups": rule.api_groups,
            "resources": rule.resources,
            "verbs": rule.verbs,
            "resourceNames": rule.resource_names,
        }
        for rule in status.resource_rules
    )


def baseline_permissions(control_plane: ControlPlane, namespace: str, workdir: Path) -> set[Permission]:
    """What any ServiceAccount without bindings may do (system:basic-user and friends), to subtract."""
    name = unique_name("baseline")
    control_plane.kubectl("create", "serviceaccount", name, "--namespace", namespace)
    kubeconfig = service_account_kubeconfig(control_plane, namespace, name, workdir / f"{name}.kubeconfig")
    return granted_permissions(kubeconfig, namespace)


def can_i(kubeconfig: Path, control_plane: ControlPlane, *args: str) -> bool:
    from harness.kube import kubectl
    from harness.tools import find_tools

    try:
        answer = kubectl(find_tools().binary("kubectl"), kubeconfig, "auth", "can-i", *args)
    except RuntimeError as error:  # `can-i` exits 1 for "no"
        answer = str(error)
    return answer.strip().splitlines()[-1].strip() == "yes"


def test_the_chart_installs_and_its_operator_pod_runs_in_a_restricted_namespace(
    control_plane: ControlPlane, chart_install: ChartInstall
) -> None:
    namespace = chart_install.namespace
    selector = ",".join(f"{k}={v}" for k, v in chart_install.deployment["spec"]["selector"]["matchLabels"].items())

    def operator_pod_running() -> bool:
        pods = json.loads(control_plane.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))
        return any(pod["status"].get("phase") == "Running" for pod in pods["items"])

    try:
        wait_until(operator_pod_running, timeout=120, what="the chart's operator pod to run")
    except TimeoutError:
        events = control_plane.kubectl("get", "events", "-n", namespace, "-o", "wide")
        pytest.fail(f"the operator pod did not start; events in {namespace}:\n{events}")
    failed = control_plane.kubectl("get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate")
    assert "violates PodSecurity" not in failed


def test_the_operator_pod_template_passes_restricted_admission_as_a_bare_pod(
    control_plane: ControlPlane, chart_install: ChartInstall, tmp_path: Path
) -> None:
    template = chart_install.deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "restricted-probe", "namespace": chart_install.namespace, **template["metadata"]},
        "spec": template["spec"],
    }
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    output = control_plane.kubectl("create", "--dry-run=server", "-f", str(manifest), "-o", "name")
    assert output.strip() == "pod/restricted-probe"


def test_the_service_account_holds_exactly_the_reviewed_permissions(
    control_plane: ControlPlane, chart_install: ChartInstall, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    namespace = chart_install.namespace
    granted = granted_permissions(operator_kubeconfig, namespace)
    baseline = baseline_permissions(control_plane, namespace, tmp_path)
    reviewed = [*REVIEWED_CLUSTER_RULES, *REVIEWED_NAMESPACED_RULES, *REVIEWED_NOTIFICATION_RULES]
    assert granted - baseline == reviewed_permissions(reviewed)


def test_the_service_account_may_get_the_one_notification_secret_and_no_other(
    control_plane: ControlPlane, chart_install: ChartInstall, operator_kubeconfig: Path
) -> None:
    namespace = ("--namespace", chart_install.namespace)
    assert can_i(operator_kubeconfig, control_plane, "get", f"secrets/{NOTIFICATION_SECRET}", *namespace)
    for request in (
        ("get", "secrets/another"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("update", f"secrets/{NOTIFICATION_SECRET}"),
    ):
        assert not can_i(operator_kubeconfig, control_plane, *request, *namespace), request
    assert not can_i(
        operator_kubeconfig, control_plane, "get", f"secrets/{NOTIFICATION_SECRET}", "--namespace", "default"
    )


@pytest.mark.parametrize(
    "request_args",
    [
        ("get", "secrets"),
        ("list", "secrets", "--all-namespaces"),
        ("create", "pods"),
        ("create", "pods/exec"),
        ("update", "deployments.apps"),
        ("create", "serviceaccounts/token"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "users"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("patch", "modeldeployments.sluice.dev"),
        ("delete", "modeldeployments.sluice.dev"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        ("list", "gateways.gateway.networking.k8s.io", "--all-namespaces"),
        ("patch", "gateways.gateway.networking.k8s.io"),
        ("list", "gatewayclasses.gateway.networking.k8s.io"),
        ("patch", "gatewayclasses.gateway.networking.k8s.io"),
    ],
    ids=" ".join,
)
def test_the_service_account_is_denied_what_the_operator_never_does(
    control_plane: ControlPlane, chart_install: ChartInstall, operator_kubeconfig: Path, request_args: tuple[str, ...]
) -> None:
    assert not can_i(operator_kubeconfig, control_plane, *request_args, "--namespace", chart_install.namespace)


def test_templated_crds_are_accepted_by_the_api_server(control_plane: ControlPlane, tmp_path: Path) -> None:
    result = helm(*template_args(set_values=["crds.templated=true"], release="sluice-crds"))
    assert result.returncode == 0, result.stderr
    crds = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] == "CustomResourceDefinition"]
    assert crds
    manifest = tmp_path / "crds.yaml"
    manifest.write_text(yaml.safe_dump_all(crds))
    output = control_plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(manifest)
    )
    assert "modeldeployments.sluice.dev" in output


def install_notes(control_plane: ControlPlane, namespace: str, *args: str) -> str:
    """The NOTES of `helm install --dry-run=server` against the local control plane (which serves the CRD)."""
    result = helm(
        "install", unique_name("notes"), str(REPO_ROOT / "charts" / "sluice"), "--dry-run=server",
        "--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace, *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_the_notes_say_the_cluster_serves_the_crd_and_that_helm_will_not_upgrade_it(
    control_plane: ControlPlane, chart_install: ChartInstall
) -> None:
    notes = install_notes(control_plane, chart_install.namespace)

    assert "CRDs: the cluster serves sluice.dev/v1alpha1 ModelDeployment." in notes
    assert "never upgrades it: before `helm upgrade`, apply the new chart's CRDs" in notes
    assert "WARNING" not in notes


@pytest.fixture
def namespaced_chart(
    control_plane: ControlPlane, kube_api_client: ApiClient, tmp_path: Path
) -> Iterator[tuple[ChartInstall, str, str, Path]]:
    """The chart in namespaced mode watching one namespace; yields it, the watched and an unwatched namespace, and
    the ServiceAccount's kubeconfig."""
    release_namespace = create_namespace(kube_api_client, prefix="sluice-ns")
    watched = create_namespace(kube_api_client, prefix="watched")
    unwatched = create_namespace(kube_api_client, prefix="unwatched")
    release = unique_name("sluice")
    installed = install_chart(
        control_plane,
        tmp_path,
        namespace=release_namespace,
        release=release,
        set_values=("watch.clusterWide=false", f"watch.namespaces[0]={watched}"),
    )
    kubeconfig = service_account_kubeconfig(
        control_plane, release_namespace, installed.service_account, tmp_path / "kubeconfig"
    )
    yield installed, watched, unwatched, kubeconfig
    for kind in ("clusterrolebinding", "clusterrole"):
        control_plane.kubectl("delete", kind, release, "--ignore-not-found")
    for namespace in (release_namespace, watched, unwatched):
        delete_namespace(kube_api_client, namespace)


def test_namespaced_mode_grants_the_namespaced_rules_only_in_the_watched_namespace(
    control_plane: ControlPlane, namespaced_chart: tuple[ChartInstall, str, str, Path], tmp_path: Path
) -> None:
    installed, watched, unwatched, kubeconfig = namespaced_chart
    assert len(of_kind(installed.manifests, "Role")) == 1
    baseline = baseline_permissions(control_plane, installed.namespace, tmp_path)
    cluster = reviewed_permissions(REVIEWED_CLUSTER_RULES)
    assert granted_permissions(kubeconfig, watched) - baseline == cluster | reviewed_permissions(
        REVIEWED_NAMESPACED_RULES
    )
    assert granted_permissions(kubeconfig, unwatched) - baseline == cluster
    assert installed.operator_env()["SLUICE_NAMESPACES"] == watched


def test_in_namespaced_mode_the_operator_reads_a_gateway_of_an_unwatched_namespace_and_its_class_features(
    kube_api_client: ApiClient, namespaced_chart: tuple[ChartInstall, str, str, Path]
) -> None:
    _, watched, unwatched, kubeconfig = namespaced_chart
    create_gateway(kube_api_client, unwatched)
    traffic = GatewayTraffic.model_validate({"parentRefs": [{"name": "public", "namespace": unwatched}]})
    with new_api_client(kubeconfig) as api_client:
        cluster = KubeCluster(KubeApi(api_client, timeout=10.0), field_manager="sluice")
        gateways = asyncio.run(parent_gateways(cluster, watched, traffic))
    assert gateways == (ParentGateway(f"{unwatched}/public", GATEWAY_CLASS, MirrorSupport.LISTED),)


MODEL_DEPLOYMENT = """
apiVersion: sluice.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: fraud
spec:
  model:
    version: "1.0.0"
    uri: https://models.example.com/fraud/1.0.0/model.onnx
    format: onnx
  replicas: 2
"""


def ready(control_plane: ControlPlane, namespace: str) -> bool:
    body: dict[str, Any] = json.loads(
        control_plane.kubectl("get", "modeldeployment", "fraud", "-n", namespace, "-o", "json")
    )
    conditions = body.get("status", {}).get("conditions", [])
    return any(item["type"] == "Ready" and item["status"] == "True" for item in conditions)


def test_the_operator_as_the_chart_service_account_brings_a_model_deployment_to_ready(
    control_plane: ControlPlane,
    chart_install: ChartInstall,
    operator_kubeconfig: Path,
    restricted_namespace: str,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "modeldeployment.yaml"
    manifest.write_text(MODEL_DEPLOYMENT)
    with running_operator(operator_kubeconfig, chart_install.operator_env(), tmp_path / "operator.log") as operator:
        control_plane.kubectl("apply", "-n", restricted_namespace, "-f", str(manifest))
        try:
            wait_until(
                lambda: ready(control_plane, restricted_namespace),
                timeout=180,
                what="ModelDeployment fraud to be Ready",
                watched=[operator],
            )
        except TimeoutError:
            events = control_plane.kubectl("get", "events", "-n", restricted_namespace, "-o", "wide")
            status = control_plane.kubectl("get", "modeldeployment", "fraud", "-n", restricted_namespace, "-o", "yaml")
            pytest.fail(f"not Ready.\n{status}\nevents:\n{events}\noperator log:\n{operator_log(operator)}")
        log = operator_log(operator, lines=400)
    refused = control_plane.kubectl(
        "get", "events", "-n", restricted_namespace, "--field-selector", "reason=FailedCreate"
    )
    assert "violates PodSecurity" not in refused
    assert "Forbidden" not in log, log
    assert " 403" not in log, log
    deployments = json.loads(control_plane.kubectl("get", "deployments", "-n", restricted_namespace, "-o", "json"))
    assert [item["status"].get("readyReplicas") for item in deployments["items"]] == [2]


def test_the_e2e_kind_prometheus_manifest_applies_and_its_pod_passes_restricted(control_plane: ControlPlane) -> None:
    manifest = REPO_ROOT / "hack" / "e2e-kind" / "prometheus.yaml"
    control_plane.kubectl("apply", "--server-side", "-f", str(manifest))
    try:

        def prometheus_pod_exists() -> bool:
            pods = json.loads(
                control_plane.kubectl("get", "pods", "-n", "monitoring", "-l", "app=prometheus", "-o", "json")
            )
            return bool(pods["items"])

        wait_until(prometheus_pod_exists, timeout=120, what="the e2e Prometheus pod to be admitted")
    finally:
        control_plane.kubectl("delete", "-f", str(manifest), "--ignore-not-found", "--wait=false")
