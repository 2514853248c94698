"""Rendering the Helm chart, the reviewed RBAC list, and a Pod Security `restricted` checker.

Shared by the chart's unit tests (helm only, no cluster) and tests/integration/test_chart_install.py (import it as
`unit.chart.chart_support`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.tools import find_tools

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "charts" / "sluice"
VALUES_EXAMPLES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.34.4"
"""The control plane the tests run (the locally built helm does not know the real default)."""
RELEASE = "sluice"

Manifest = dict[str, Any]


def helm_binary() -> Path:
    return find_tools().binary("helm")


def helm(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run helm; the result is returned whatever the exit code (rejection tests read stderr)."""
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=timeout, check=False)


def template_args(
    *,
    values_files: Iterable[Path] = (),
    set_values: Iterable[str] = (),
    api_versions: Iterable[str] = (),
    namespace: str = "sluice-system",
    release: str = RELEASE,
    include_crds: bool = False,
) -> list[str]:
    args = ["template", release, str(CHART_DIR), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    for assignment in set_values:
        args += ["--set", assignment]
    for api_version in api_versions:
        args += ["--api-versions", api_version]
    if include_crds:
        args.append("--include-crds")
    return args


def render(
    *,
    values_files: Iterable[Path] = (),
    set_values: Iterable[str] = (),
    api_versions: Iterable[str] = (),
    namespace: str = "sluice-system",
    release: str = RELEASE,
    include_crds: bool = False,
) -> list[Manifest]:
    """`helm template` the chart; the rendered objects, in order. Raises with helm's stderr on failure."""
    result = helm(
        *template_args(
            values_files=values_files,
            set_values=set_values,
            api_versions=api_versions,
            namespace=namespace,
            release=release,
            include_crds=include_crds,
        )
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed ({result.returncode}):\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] == kind]


def the_one(manifests: Iterable[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


# --- The reviewed RBAC list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    """One verb on one resource of one API group ("" is the core group), on every object or on one by name."""

    group: str
    resource: str
    verb: str
    name: str = ""
    """The one object (a rule's resourceNames); empty: any object."""


@dataclass(frozen=True)
class ReviewedRule:
    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    names: tuple[str, ...] = ()
    """resourceNames: only these objects; empty: any."""

    def permissions(self) -> set[Permission]:
        return {
            Permission(self.group, self.resource, verb, name) for verb in self.verbs for name in self.names or ("",)
        }


APPLY_AND_DELETE = ("get", "create", "patch", "delete")
"""Children are written with server-side apply: a PATCH, which the API server also authorizes as `create` when the
object does not exist yet; read back with GET; deleted when a track goes away."""

REVIEWED_NAMESPACED_RULES = (
    ReviewedRule(
        "sluice.dev",
        "modeldeployments",
        ("get", "list", "watch"),
        "Kopf lists and watches ModelDeployments; the reconciler reads each one before it decides",
    ),
    ReviewedRule(
        "sluice.dev",
        "modeldeployments/status",
        ("patch",),
        "the reconciler server-side applies the status subresource",
    ),
    ReviewedRule(
        "sluice.dev",
        "modeldeployments/finalizers",
        ("update",),
        "children carry ownerReferences with blockOwnerDeletion=true, which clusters running the "
        "OwnerReferencesPermissionEnforcement admission plugin (OpenShift, for one) allow only with this",
    ),
    ReviewedRule(
        "apps",
        "deployments",
        ("get", "list", "watch", "create", "patch", "delete"),
        "the stable and canary serving Deployments: applied, read, deleted; Kopf watches them to wake their owner",
    ),
    ReviewedRule(
        "",
        "services",
        (*APPLY_AND_DELETE, "list", "watch"),
        "the stable and canary Services; Kopf watches them to wake their owner (a deleted one is recreated at once)",
    ),
    ReviewedRule(
        "gateway.networking.k8s.io",
        "httproutes",
        (*APPLY_AND_DELETE, "list", "watch"),
        "the weighted HTTPRoute, with spec.traffic.gateway; Kopf watches it to wake its owner",
    ),
    ReviewedRule(
        "autoscaling",
        "horizontalpodautoscalers",
        APPLY_AND_DELETE,
        "with spec.autoscaling: one HPA per track, applied, read back, deleted when its track stops being autoscaled "
        "(no list or watch: the HPA's writes land on the watched Deployments)",
    ),
    ReviewedRule("", "events", ("create",), "Events on ModelDeployments (rollout steps, verdicts, rollbacks)"),
    ReviewedRule(
        "",
        "configmaps",
        ("get",),
        "the validation gate's dataset, with spec.validation.configMapRef: one named key, read by name (no list)",
    ),
    ReviewedRule(
        "",
        "pods",
        ("list",),
        "read-only: a ModelDeployment's own pods (label-selected), listed while a track is not ready, to report "
        "pods that cannot schedule or start (PodsCanStart); no get/watch, no pods/exec, pods/log or secrets",
    ),
)
"""In every watched namespace (through the ClusterRole in cluster-wide mode, a Role per namespace otherwise)."""

REVIEWED_CLUSTER_RULES = (
    ReviewedRule(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        "Kopf discovers which resources the cluster serves (and notices the CRD being installed or removed)",
    ),
    ReviewedRule(
        "gateway.networking.k8s.io",
        "gateways",
        ("get",),
        "with spec.rollout.shadow: the route's parent Gateways, by name (often in a namespace the operator does not "
        "watch), for their gatewayClassName",
    ),
    ReviewedRule(
        "gateway.networking.k8s.io",
        "gatewayclasses",
        ("get",),
        "with spec.rollout.shadow: the Gateways' classes (cluster-scoped), by name, for status.supportedFeatures: "
        "the mirror filter is written only through Gateways implementing RequestMirror",
    ),
)
"""Cluster-scoped, in both modes (a ClusterRole)."""

REVIEWED_STANDBY_RULES = (
    ReviewedRule(
        "coordination.k8s.io",
        "leases",
        ("get", "create", "update"),
        "with standby.enabled: leader election among the replicas on one Lease (read it, create it when missing, "
        "renew or take it over with an optimistic-concurrency update); a Role in the release namespace only",
    ),
)
"""With standby.enabled (a Role and RoleBinding in the release namespace)."""

NOTIFICATION_SECRET = "sluice-notifications"
"""The notification Secret of ci/notifications-values.yaml (and of the installed chart's identity test)."""

REVIEWED_NOTIFICATION_RULES = (
    ReviewedRule(
        "",
        "secrets",
        ("get",),
        "with notifications.secretName: the one Secret holding the notification receivers' webhook URLs, by name "
        "(resourceNames); a Role in the release namespace only, no list or watch, no other Secret",
        names=(NOTIFICATION_SECRET,),
    ),
)
"""With notifications.secretName (a Role and RoleBinding in the release namespace)."""

FORBIDDEN_VERBS = frozenset({"*", "escalate", "bind", "impersonate"})
FORBIDDEN_RESOURCES = frozenset({"*", "secrets", "pods/exec", "pods/attach", "serviceaccounts/token", "nodes/proxy"})


def reviewed_permissions(rules: Iterable[ReviewedRule]) -> set[Permission]:
    return {permission for rule in rules for permission in rule.permissions()}


def rule_permissions(rules: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """Expand PolicyRules (as in a Role, or a SelfSubjectRulesReview's resourceRules) into single permissions."""
    return {
        Permission(group, resource, verb, name)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
        for name in rule.get("resourceNames") or [""]
    }


# --- Pod Security "restricted", plus what sluice adds -------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Why a pod spec would fail Pod Security `restricted` (v1.34) or sluice's own stricter bar; [] when it passes.

    sluice's bar adds: a numeric non-root runAsUser, a read-only root filesystem, requests and limits set.
    """
    problems: list[str] = []
    pod_security = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} has a type restricted does not allow: {sorted(kinds)}")
    pod_seccomp = (pod_security.get("seccompProfile") or {}).get("type")
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    if not containers:
        problems.append("no containers")
    for container in containers:
        name = container["name"]
        security = container.get("securityContext") or {}

        def effective(key: str, container_security: Mapping[str, Any] = security) -> Any:
            return container_security.get(key, pod_security.get(key))

        if security.get("privileged"):
            problems.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        if effective("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        user = effective("runAsUser")
        if not isinstance(user, int) or user == 0:
            problems.append(f"{name}: runAsUser is not a numeric non-root user ({user!r})")
        seccomp = (security.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is not RuntimeDefault ({seccomp!r})")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{name}: uses a hostPort")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(kind) or {}):
                    problems.append(f"{name}: no {resource} in resources.{kind}")
    return problems


def container_env(deployment: Manifest, container: str = "operator") -> dict[str, str]:
    """The literal environment variables of a Deployment's container."""
    containers: Sequence[Mapping[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    found = next(item for item in containers if item["name"] == container)
    return {item["name"]: item.get("value", "") for item in found.get("env") or [] if "valueFrom" not in item}
