"""Small helpers over a running cluster: API clients, namespaces that are ready for pods, applying manifests.

`kubernetes` (the Python client) is imported lazily so that importing the harness stays cheap.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from harness.processes import wait_until

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

RESTRICTED_POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def new_api_client(kubeconfig: Path) -> ApiClient:
    """A `kubernetes.client.ApiClient` for the kubeconfig's current context (a context manager: close it)."""
    from kubernetes import config

    api_client: ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api_client


def unique_name(prefix: str) -> str:
    """`prefix` plus a short random suffix, valid as a namespace or object name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_namespace(
    api_client: ApiClient,
    name: str | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    prefix: str = "test",
    timeout: float = 60.0,
) -> str:
    """Create a namespace and wait until its `default` ServiceAccount exists (pods are rejected before that).

    Returns the namespace's name (`prefix-<random>` unless `name` is given).
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    namespace = name or unique_name(prefix)
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=dict(labels or {}))))

    def default_service_account_exists() -> bool:
        try:
            core.read_namespaced_service_account("default", namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    wait_until(default_service_account_exists, timeout=timeout, what=f"ServiceAccount {namespace}/default")
    return namespace


def delete_namespace(api_client: ApiClient, name: str, *, wait: bool = False, timeout: float = 60.0) -> None:
    """Delete a namespace (ignoring one that is already gone); with `wait`, until the server has removed it."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise
    if not wait:
        return

    def namespace_gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    wait_until(namespace_gone, timeout=timeout, what=f"namespace {name} to be deleted")


def kubectl(kubectl_binary: Path, kubeconfig: Path, *args: str, timeout: float = 120.0) -> str:
    """Run kubectl against the cluster and return its stdout; raise with stderr on failure."""
    result = subprocess.run(
        [str(kubectl_binary), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def apply_manifests(kubectl_binary: Path, kubeconfig: Path, paths: Iterable[Path], timeout: float = 60.0) -> list[str]:
    """Server-side apply the manifests and wait until the CustomResourceDefinitions among them are Established.

    Returns the applied objects as `kind.group/name`.
    """
    files = [str(path) for path in paths]
    if not files:
        return []
    arguments = ["apply", "--server-side", "--force-conflicts", "-o", "name"]
    for file in files:
        arguments += ["-f", file]
    applied = kubectl(kubectl_binary, kubeconfig, *arguments).split()
    crds = [name for name in applied if name.startswith("customresourcedefinition.")]
    if crds:
        wait_established(kubectl_binary, kubeconfig, crds, timeout)
    return applied


def wait_established(kubectl_binary: Path, kubeconfig: Path, crds: list[str], timeout: float) -> None:
    """Wait until the CRDs are Established.

    `kubectl wait` fails at once ("accessor error") when it reads a CRD whose status has no conditions yet, right
    after it is created; that case is retried until the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(deadline - time.monotonic(), 1.0)
        arguments = ["wait", "--for=condition=Established", f"--timeout={remaining:.0f}s", *crds]
        try:
            kubectl(kubectl_binary, kubeconfig, *arguments, timeout=remaining + 10)
            return
        except RuntimeError as error:
            if "accessor error" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
