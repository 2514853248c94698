"""Running the real `sluice-operator` against the test control plane, under its least-privilege identity, behind a
request-counting proxy.

- `documented_rbac_rules()`: the ClusterRole rules of docs/operations.md; the operator runs as a ServiceAccount
  bound to exactly these, so a permission missing from the documentation fails the tests.
- `CountingProxy`: a plain-HTTP reverse proxy on 127.0.0.1 in front of the API server; it records every request
  the operator makes (method and path), so tests count real write requests, Kopf's included.
- `OperatorProcess`: the `sluice-operator` console script as a subprocess, stopped by PID.
- `start_least_privileged_operator(...)`: all three together, the CRD installed first: what most operator
  fixtures start.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness import ControlPlane, unique_name
from harness.loopback_proxy import WRITE_METHODS, LoopbackProxy
from harness.processes import ProcessRecord, launch, stop_processes, tail
from integration.sluice_crd import install_crd

OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_rbac_rules() -> list[dict[str, list[str]]]:
    """The ClusterRole rules in docs/operations.md (the YAML block between the rbac-rules markers)."""
    text = OPERATIONS_DOC.read_text()
    block = text.split("<!-- rbac-rules: begin -->", 1)[1].split("<!-- rbac-rules: end -->", 1)[0]
    rules: list[dict[str, list[str]]] = yaml.safe_load(block.replace("```yaml", "").replace("```", ""))
    return rules


def create_operator_identity(api_client: ApiClient, namespace: str, name: str = "sluice-operator") -> str:
    """A ServiceAccount bound through a ClusterRole to exactly the documented rules; returns a token for it (2 h)."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    rbac.create_cluster_role(
        client.V1ClusterRole.model_validate(
            {"metadata": {"name": f"{namespace}-{name}"}, "rules": documented_rbac_rules()}
        )
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding.model_validate(
            {
                "metadata": {"name": f"{namespace}-{name}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{namespace}-{name}",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            }
        )
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=7200))
    response = core.create_namespaced_service_account_token(name, namespace, request)
    assert response.status is not None
    return str(response.status.token)


def write_token_kubeconfig(path: Path, server_url: str, token: str) -> Path:
    """A kubeconfig for a plain-HTTP server (the proxy) authenticating with a bearer token."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": server_url}}],
        "users": [{"name": "sluice-operator", "user": {"token": token}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "sluice-operator"}}],
        "current-context": "proxy",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Request:
    method: str
    path: str


class CountingProxy(LoopbackProxy):
    """Forwards plain HTTP on 127.0.0.1 to the API server over TLS, streaming (watches included), and records
    every request."""

    def __init__(self, upstream_url: str, ca_file: Path) -> None:
        super().__init__(upstream_url, ca_file, thread_name="counting-proxy")
        self._requests: list[Request] = []

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def writes(self, under: str = "") -> list[Request]:
        """Write requests (POST, PUT, PATCH, DELETE) whose path contains `under`."""
        return [r for r in self.requests() if r.method in WRITE_METHODS and under in r.path]

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests() if r.method == method and r.path == path)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self._requests.append(Request(request.method, request.path))
        return await self._forward(request)


class OperatorProcess:
    """`sluice-operator` as a subprocess (the console script next to this interpreter)."""

    def __init__(self, kubeconfig: Path, log_path: Path, env: Mapping[str, str]) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = dict(env)
        self.record: ProcessRecord | None = None

    def start(self) -> OperatorProcess:
        script = Path(sys.executable).parent / "sluice-operator"
        command: list[str | Path] = ["env", f"KUBECONFIG={self.kubeconfig}"]
        command += [f"{key}={value}" for key, value in self.env.items()]
        self.record = launch("sluice-operator", [*command, script], self.log_path, die_with_parent=True)
        return self

    def stop(self) -> None:
        if self.record is not None:
            stop_processes([self.record], grace_seconds=15)
            self.record = None

    def is_running(self) -> bool:
        return self.record is not None and self.record.is_alive()

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def start_least_privileged_operator(
    control_plane: ControlPlane,
    api_client: ApiClient,
    proxy: CountingProxy,
    workdir: Path,
    settings: Mapping[str, str],
) -> OperatorProcess:
    """The CRD installed, then `sluice-operator` started with `settings` as its environment, as a new
    ServiceAccount bound to exactly the documented rules, reaching the API server through `proxy`; its kubeconfig
    and its log (`operator.log`) in `workdir`."""
    install_crd(control_plane)
    token = create_operator_identity(api_client, unique_name("sluice-system"))
    kubeconfig = write_token_kubeconfig(workdir / "kubeconfig", proxy.url, token)
    return OperatorProcess(kubeconfig, workdir / "operator.log", settings).start()


def status_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = obj.get("status") or {}
    return status


def condition(obj: Mapping[str, Any], condition_type: str) -> dict[str, Any]:
    """The condition of that type ({} when absent)."""
    return next((c for c in status_of(obj).get("conditions", []) if c.get("type") == condition_type), {})


def lease_holder(api_client: ApiClient, namespace: str, lease: str) -> str:
    """The holderIdentity of a leader-election Lease; empty when there is none (yet)."""
    try:
        found = client.CoordinationV1Api(api_client).read_namespaced_lease(lease, namespace)
    except ApiException as error:
        if error.status == 404:
            return ""
        raise
    return (found.spec.holder_identity if found.spec else None) or ""


def operator_replicas(
    control_plane: ControlPlane, namespace: str, log_dir: Path, env: Mapping[str, str], *, own_field_managers: bool
) -> tuple[str, OperatorProcess, OperatorProcess]:
    """Two operators (not started), `replica-a` and `replica-b`, electing a leader on a new Lease in `namespace`
    and watching only it; with `own_field_managers` each writes as `sluice-a` / `sluice-b`."""
    install_crd(control_plane)
    lease = unique_name("sluice-leader")
    first, second = (
        OperatorProcess(
            control_plane.kubeconfig,
            log_dir / f"replica-{letter}.log",
            {
                "POD_NAME": f"replica-{letter}",
                **({"SLUICE_FIELD_MANAGER": f"sluice-{letter}"} if own_field_managers else {}),
                "SLUICE_LEADER_ELECTION_LEASE": lease,
                "SLUICE_LEADER_ELECTION_NAMESPACE": namespace,
                "SLUICE_NAMESPACES": namespace,
                **env,
            },
        )
        for letter in ("a", "b")
    )
    return lease, first, second
