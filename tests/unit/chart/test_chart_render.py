"""The Helm chart lints and renders for its defaults and every documented values example, with least-privilege RBAC,
a restricted operator pod, and the app.kubernetes.io labels on every object. Needs the helm binary, no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sluice.settings import Settings
from unit.chart.chart_support import (
    CHART_DIR,
    FORBIDDEN_RESOURCES,
    FORBIDDEN_VERBS,
    KUBE_VERSION,
    NOTIFICATION_SECRET,
    RELEASE,
    REPO_ROOT,
    REVIEWED_CLUSTER_RULES,
    REVIEWED_NAMESPACED_RULES,
    REVIEWED_NOTIFICATION_RULES,
    REVIEWED_STANDBY_RULES,
    VALUES_EXAMPLES,
    Manifest,
    container_env,
    helm,
    of_kind,
    render,
    restricted_violations,
    reviewed_permissions,
    rule_permissions,
    template_args,
    the_one,
)

EXAMPLES = {path.name: path for path in VALUES_EXAMPLES}
DEFAULTS_AND_EXAMPLES = [None, *VALUES_EXAMPLES]
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by")
PENDING_OPERATOR_SETTINGS = frozenset({"SLUICE_METRICS_PORT"})
"""Variables the chart sets ahead of the operator reading them (see docs/install.md, "Operator settings")."""


def example_id(path: Path | None) -> str:
    return "defaults" if path is None else path.name


def render_example(path: Path | None, **kwargs: object) -> list[Manifest]:
    return render(values_files=[] if path is None else [path], **kwargs)  # type: ignore[arg-type]


def test_there_are_documented_values_examples_for_each_mode() -> None:
    assert {
        "namespaced-values.yaml",
        "standby-values.yaml",
        "monitoring-values.yaml",
        "crds-templated-values.yaml",
        "pinned-image-values.yaml",
        "notifications-values.yaml",
    } <= set(EXAMPLES)


@pytest.mark.parametrize("values", DEFAULTS_AND_EXAMPLES, ids=example_id)
def test_helm_lint_passes_strictly(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART_DIR), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", DEFAULTS_AND_EXAMPLES, ids=example_id)
def test_every_rendered_object_carries_the_standard_labels(values: Path | None) -> None:
    for manifest in render_example(values, api_versions=[PROMETHEUS_OPERATOR]):
        labels = manifest["metadata"].get("labels") or {}
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert not missing, f"{manifest['kind']}/{manifest['metadata']['name']} lacks {missing}"


@pytest.mark.parametrize("values", DEFAULTS_AND_EXAMPLES, ids=example_id)
def test_the_operator_pod_passes_pod_security_restricted(values: Path | None) -> None:
    deployment = the_one(render_example(values), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    assert any(volume["name"] == "tmp" and "emptyDir" in volume for volume in pod["volumes"])


@pytest.mark.parametrize("values", DEFAULTS_AND_EXAMPLES, ids=example_id)
def test_no_rule_uses_a_wildcard_privilege_verb_or_any_secret_but_the_one_named(values: Path | None) -> None:
    manifests = render_example(values)
    for role in [*of_kind(manifests, "ClusterRole"), *of_kind(manifests, "Role")]:
        for rule in role["rules"]:
            if rule["resources"] == ["secrets"] and role["metadata"]["name"].endswith("-notifications"):
                assert (rule["verbs"], rule["resourceNames"]) == (["get"], [NOTIFICATION_SECRET]), rule
                continue
            assert not FORBIDDEN_VERBS & set(rule["verbs"]), rule
            assert not FORBIDDEN_RESOURCES & set(rule["resources"]), rule
            assert "*" not in rule["apiGroups"], rule
            assert "resourceNames" not in rule or rule["resourceNames"], rule


def test_cluster_wide_mode_grants_exactly_the_reviewed_rules_through_one_cluster_role() -> None:
    manifests = render()
    assert of_kind(manifests, "Role") == []
    cluster_role = the_one(manifests, "ClusterRole")
    assert rule_permissions(cluster_role["rules"]) == reviewed_permissions(
        [*REVIEWED_CLUSTER_RULES, *REVIEWED_NAMESPACED_RULES]
    )
    binding = the_one(manifests, "ClusterRoleBinding")
    account = the_one(manifests, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "sluice-system"}
    ]


def test_namespaced_mode_grants_the_reviewed_rules_only_in_the_listed_namespaces() -> None:
    manifests = render(values_files=[EXAMPLES["namespaced-values.yaml"]])
    cluster_role = the_one(manifests, "ClusterRole")
    assert rule_permissions(cluster_role["rules"]) == reviewed_permissions(REVIEWED_CLUSTER_RULES)
    roles = of_kind(manifests, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["ml-team-a", "ml-team-b"]
    for role in roles:
        assert rule_permissions(role["rules"]) == reviewed_permissions(REVIEWED_NAMESPACED_RULES)
    bindings = of_kind(manifests, "RoleBinding")
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == ["ml-team-a", "ml-team-b"]
    assert container_env(the_one(manifests, "Deployment"))["SLUICE_NAMESPACES"] == "ml-team-a,ml-team-b"


def test_cluster_wide_mode_tells_the_operator_to_watch_every_namespace() -> None:
    assert container_env(the_one(render(), "Deployment"))["SLUICE_NAMESPACES"] == ""


def leader_election_role(manifests: list[Manifest]) -> Manifest:
    roles = [role for role in of_kind(manifests, "Role") if role["metadata"]["name"].endswith("-leader-election")]
    assert len(roles) == 1, f"expected one leader-election Role, rendered {len(roles)}"
    return roles[0]


def test_a_standby_elects_a_leader_on_a_lease_in_the_release_namespace() -> None:
    manifests = render(values_files=[EXAMPLES["standby-values.yaml"]])
    cluster_role = the_one(manifests, "ClusterRole")
    assert rule_permissions(cluster_role["rules"]) == reviewed_permissions(
        [*REVIEWED_CLUSTER_RULES, *REVIEWED_NAMESPACED_RULES]
    )
    role = leader_election_role(manifests)
    assert role["metadata"]["namespace"] == "sluice-system"
    assert rule_permissions(role["rules"]) == reviewed_permissions(REVIEWED_STANDBY_RULES)
    binding = the_one(manifests, "RoleBinding")
    account = the_one(manifests, "ServiceAccount")
    assert binding["metadata"]["namespace"] == "sluice-system"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "sluice-system"}
    ]
    deployment = the_one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert container_env(deployment)["SLUICE_LEADER_ELECTION_LEASE"] == "sluice-leader"
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in env
    assert of_kind(manifests, "CustomResourceDefinition") == []
    assert not [m for m in manifests if m["apiVersion"].startswith("kopf.dev/")]
    assert the_one(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_a_namespaced_standby_keeps_its_lease_in_the_release_namespace_only() -> None:
    manifests = render(
        values_files=[EXAMPLES["namespaced-values.yaml"], EXAMPLES["standby-values.yaml"]],
    )
    assert leader_election_role(manifests)["metadata"]["namespace"] == "sluice-system"
    for role in of_kind(manifests, "Role"):
        if role is not leader_election_role(manifests):
            assert rule_permissions(role["rules"]) == reviewed_permissions(REVIEWED_NAMESPACED_RULES)


def test_notifications_grant_get_on_the_one_named_secret_in_the_release_namespace_only() -> None:
    manifests = render(values_files=[EXAMPLES["notifications-values.yaml"]])
    cluster_role = the_one(manifests, "ClusterRole")
    assert rule_permissions(cluster_role["rules"]) == reviewed_permissions(
        [*REVIEWED_CLUSTER_RULES, *REVIEWED_NAMESPACED_RULES]
    )
    role, binding = the_one(manifests, "Role"), the_one(manifests, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "sluice-system"
    assert rule_permissions(role["rules"]) == reviewed_permissions(REVIEWED_NOTIFICATION_RULES)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    env = container_env(the_one(manifests, "Deployment"))
    assert env["SLUICE_NOTIFICATION_SECRET"] == NOTIFICATION_SECRET
    assert env["SLUICE_NOTIFICATION_NAMESPACE"] == "sluice-system"
    assert env["SLUICE_NOTIFICATION_DEFAULT_RECEIVERS"] == "ml-team"


def test_without_a_notification_secret_no_secret_is_readable_and_default_receivers_are_refused() -> None:
    assert of_kind(render(), "Role") == []
    result = helm(*template_args(set_values=["notifications.defaultReceivers={ml-team}"]))
    assert result.returncode != 0
    assert "notifications.defaultReceivers needs notifications.secretName" in result.stderr


def test_the_default_install_runs_one_replica_without_leader_election_or_a_disruption_budget() -> None:
    manifests = render()
    deployment = the_one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "SLUICE_LEADER_ELECTION_LEASE" not in container_env(deployment)
    assert of_kind(manifests, "Role") == of_kind(manifests, "RoleBinding") == []
    assert of_kind(manifests, "PodDisruptionBudget") == []
    assert of_kind(manifests, "CustomResourceDefinition") == []


def test_monitors_render_only_when_the_cluster_serves_the_prometheus_operator_api() -> None:
    example = EXAMPLES["monitoring-values.yaml"]
    without = render(values_files=[example], set_values=["metrics.podMonitor.enabled=true"])
    assert of_kind(without, "ServiceMonitor") == of_kind(without, "PodMonitor") == []
    with_api = render(
        values_files=[example], set_values=["metrics.podMonitor.enabled=true"], api_versions=[PROMETHEUS_OPERATOR]
    )
    service_monitor = the_one(with_api, "ServiceMonitor")
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    pod_monitors = {monitor["metadata"]["name"]: monitor for monitor in of_kind(with_api, "PodMonitor")}
    assert pod_monitors[RELEASE]["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_the_metrics_service_selects_the_operator_pods_on_the_metrics_port() -> None:
    manifests = render(set_values=["metrics.port=9100"])
    service = the_one(manifests, "Service")
    deployment = the_one(manifests, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in ports


def test_the_crds_in_the_chart_are_the_generated_ones() -> None:
    generated = REPO_ROOT / "crds" / "sluice.dev_modeldeployments.yaml"
    in_chart = CHART_DIR / "crds" / "sluice.dev_modeldeployments.yaml"
    assert in_chart.read_text() == generated.read_text()
    included = of_kind(render(include_crds=True), "CustomResourceDefinition")
    assert [crd["metadata"]["name"] for crd in included] == ["modeldeployments.sluice.dev"]


def test_templated_crds_match_crds_dir_and_are_kept_on_uninstall() -> None:
    generated = yaml.safe_load((REPO_ROOT / "crds" / "sluice.dev_modeldeployments.yaml").read_text())
    templated = the_one(render(values_files=[EXAMPLES["crds-templated-values.yaml"]]), "CustomResourceDefinition")
    assert templated["spec"] == generated["spec"]
    assert templated["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert templated["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_an_image_digest_pins_the_operator_image() -> None:
    deployment = the_one(render(values_files=[EXAMPLES["pinned-image-values.yaml"]]), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/mirror/sluice-operator@sha256:" + "0" * 64
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_the_default_image_is_the_chart_app_version() -> None:
    deployment = the_one(render(), "Deployment")
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/sluice-dev/sluice-operator:0.1.0"
    )


def test_only_the_operator_pod_mounts_the_service_account_token() -> None:
    manifests = render()
    assert the_one(manifests, "ServiceAccount")["automountServiceAccountToken"] is False
    assert the_one(manifests, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_every_operator_variable_the_chart_sets_is_an_operator_setting() -> None:
    known = {f"SLUICE_{name.upper()}" for name in Settings.model_fields}
    env = container_env(
        the_one(
            render(
                set_values=["operator.extraEnv[0].name=SLUICE_FIELD_MANAGER", "operator.extraEnv[0].value=sluice-test"]
            ),
            "Deployment",
        )
    )
    unknown = {name for name in env if name.startswith("SLUICE_")} - known - PENDING_OPERATOR_SETTINGS
    assert unknown == set()


def test_the_chart_defaults_match_the_operator_defaults() -> None:
    env = container_env(the_one(render(), "Deployment"))
    fields = Settings.model_fields
    assert env["SLUICE_SERVING_IMAGE"] == fields["serving_image"].default
    assert env["SLUICE_PROMETHEUS_URL"] == fields["prometheus_url"].default
    assert env["SLUICE_LOG_LEVEL"] == fields["log_level"].default
    assert env["SLUICE_LOG_FORMAT"] == fields["log_format"].default


def test_the_readiness_probe_asks_the_operator_endpoint_the_chart_configures() -> None:
    deployment = the_one(render(set_values=["health.readinessPort=8090"]), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container_env(deployment)["SLUICE_READINESS_ENDPOINT"] == "http://0.0.0.0:8090/readyz"
    assert {"name": "ready", "containerPort": 8090, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
