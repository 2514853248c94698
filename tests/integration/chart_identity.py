"""The chart on the local control plane: its rendered objects applied as an admin would, and a kubeconfig that
authenticates as the chart's ServiceAccount (a TokenRequest token), so the operator runs with exactly the chart's
RBAC. Used through the fixtures in tests/integration/conftest.py (`chart_install`, `operator_kubeconfig`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import wait_until
from harness.control_plane import ControlPlane
from harness.processes import ProcessRecord, free_ports, http_ok, launch, stop_processes, tail
from unit.chart.chart_support import Manifest, container_env, helm, template_args, the_one

TOKEN_DURATION = "2h"


@dataclass(frozen=True)
class ChartInstall:
    """The chart as applied: release namespace, the operator's ServiceAccount, the rendered objects."""

    namespace: str
    release: str
    service_account: str
    manifests: list[Manifest]

    @property
    def deployment(self) -> Manifest:
        return the_one(self.manifests, "Deployment")

    def operator_env(self) -> dict[str, str]:
        """The SLUICE_* settings the chart gives the operator container."""
        return {name: value for name, value in container_env(self.deployment).items() if name.startswith("SLUICE_")}


def install_chart(
    control_plane: ControlPlane,
    workdir: Path,
    *,
    namespace: str,
    release: str = "sluice",
    set_values: tuple[str, ...] = (),
) -> ChartInstall:
    """`helm template --include-crds | kubectl apply --server-side` into `namespace` (which must exist)."""
    result = helm(*template_args(namespace=namespace, release=release, set_values=set_values, include_crds=True))
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{result.stderr}")
    rendered = workdir / f"{release}.yaml"
    rendered.write_text(result.stdout)
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(rendered))
    for crd in (doc for doc in manifests if doc["kind"] == "CustomResourceDefinition"):
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd['metadata']['name']}")
    account = the_one(manifests, "ServiceAccount")["metadata"]["name"]
    return ChartInstall(namespace=namespace, release=release, service_account=account, manifests=manifests)


def service_account_kubeconfig(control_plane: ControlPlane, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig for `namespace/service_account`: a bound token from the TokenRequest API, the cluster's CA."""
    token = control_plane.kubectl(
        "create", "token", service_account, "--namespace", namespace, f"--duration={TOKEN_DURATION}"
    ).strip()
    admin: dict[str, Any] = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    user = f"system:serviceaccount:{namespace}:{service_account}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user, "namespace": namespace}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    path.chmod(0o600)
    return path


def operator_command() -> list[str]:
    """The `sluice-operator` console script of this virtualenv (or the module, when the script is not installed)."""
    script = Path(sys.executable).parent / "sluice-operator"
    if script.exists():
        return [str(script)]
    found = shutil.which("sluice-operator")
    return [found] if found else [sys.executable, "-c", "from sluice.main import main; main()"]


@contextmanager
def running_operator(
    kubeconfig: Path, settings: Mapping[str, str], log_path: Path, *, timeout: float = 60.0
) -> Iterator[ProcessRecord]:
    """Run `sluice-operator` as an ordinary local process with `settings` (SLUICE_*) and `kubeconfig`.

    The liveness and readiness endpoints move to free loopback ports; the process is stopped by PID on exit.
    """
    port, readiness_port = free_ports(2)
    env = dict(settings)
    env["SLUICE_LIVENESS_ENDPOINT"] = f"http://127.0.0.1:{port}/healthz"
    env["SLUICE_READINESS_ENDPOINT"] = f"http://127.0.0.1:{readiness_port}/readyz"
    env["KUBECONFIG"] = str(kubeconfig)
    unset = [arg for key in os.environ if key.startswith("SLUICE_") or key == "KUBERNETES_SERVICE_HOST"
             for arg in ("-u", key)]  # fmt: skip
    command = ["env", *unset, *(f"{key}={value}" for key, value in sorted(env.items())), *operator_command()]
    record = launch("sluice-operator", command, log_path, die_with_parent=True)
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: http_ok(url), timeout=timeout, what="the operator's liveness endpoint", watched=[record])
        yield record
    finally:
        stop_processes([record])


def operator_log(record: ProcessRecord, lines: int = 60) -> str:
    return tail(record.log_path, lines)
