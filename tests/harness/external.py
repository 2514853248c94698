"""An existing cluster for the `real` scenarios instead of the harness's own real node (`make e2e-kind`).

`hack/e2e-kind.sh` creates a kind cluster, loads both images into it, installs Prometheus there, and runs
`pytest -m real tests/real` with these variables; the `real` fixtures use `ExternalCluster.from_environment()`
when it returns one, and start the harness's real node otherwise:

- `SLUICE_REAL_CLUSTER=kubeconfig`: use the cluster of `KUBECONFIG` (required then);
- `SLUICE_REAL_PROMETHEUS_URL`: a Prometheus, reachable from this host, that scrapes the serving pods with the
  labels a PodMonitor gives (docs/observability.md);
- `SLUICE_REAL_HOST_ADDRESS`: an address of this host that the cluster's pods reach (the model file server binds
  it); for kind, the gateway of its Docker network;
- `SLUICE_REAL_GATEWAY_URL`: the listener of the Gateway the scenarios route through, as seen from this host (the
  user brings the Gateway API implementation and the Gateway);
- `SLUICE_REAL_GATEWAY`: that Gateway as `namespace/name` (default `default/public`, as `make cluster-up
  NODES=real` names its own).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLUSTER_VARIABLE = "SLUICE_REAL_CLUSTER"
PROMETHEUS_VARIABLE = "SLUICE_REAL_PROMETHEUS_URL"
HOST_ADDRESS_VARIABLE = "SLUICE_REAL_HOST_ADDRESS"
GATEWAY_URL_VARIABLE = "SLUICE_REAL_GATEWAY_URL"
GATEWAY_VARIABLE = "SLUICE_REAL_GATEWAY"
DEFAULT_GATEWAY = "default/public"


@dataclass(frozen=True)
class ExternalCluster:
    """A cluster the scenarios run against, as the environment describes it."""

    kubeconfig: Path
    prometheus_url: str
    host_address: str
    gateway_url: str
    gateway_namespace: str = "default"
    gateway_name: str = "public"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ExternalCluster | None:
        """The cluster `SLUICE_REAL_CLUSTER=kubeconfig` names; None when the variable is unset or empty."""
        mode = environ.get(CLUSTER_VARIABLE, "")
        if not mode:
            return None
        if mode != "kubeconfig":
            raise ValueError(f"{CLUSTER_VARIABLE} must be 'kubeconfig' or empty")
        required = ("KUBECONFIG", PROMETHEUS_VARIABLE, HOST_ADDRESS_VARIABLE, GATEWAY_URL_VARIABLE)
        missing = [name for name in required if not environ.get(name)]
        if missing:
            raise ValueError(f"{CLUSTER_VARIABLE}=kubeconfig needs {', '.join(missing)}")
        kubeconfig = Path(environ["KUBECONFIG"])
        if not kubeconfig.is_file():
            raise ValueError(f"KUBECONFIG {kubeconfig} is not a file")
        namespace, slash, name = (environ.get(GATEWAY_VARIABLE) or DEFAULT_GATEWAY).partition("/")
        if not (namespace and slash and name):
            raise ValueError(f"{GATEWAY_VARIABLE} must be namespace/name")
        return cls(
            kubeconfig,
            environ[PROMETHEUS_VARIABLE],
            environ[HOST_ADDRESS_VARIABLE],
            environ[GATEWAY_URL_VARIABLE].rstrip("/"),
            namespace,
            name,
        )
