"""An existing cluster for the `real` scenarios instead of the harness's own real node (`make e2e-kind`).

`hack/e2e-kind.sh` creates a kind cluster, loads both images into it, installs Prometheus there, and runs
`pytest -m real tests/real` with these variables; the `real` fixtures use `ExternalCluster.from_environment()`
when it returns one, and start the harness's real node otherwise:

- `SLUICE_REAL_CLUSTER=kubeconfig`: use the cluster of `KUBECONFIG` (required then);
- `SLUICE_REAL_PROMETHEUS_URL`: a Prometheus, reachable from this host, that scrapes the serving pods with the
  labels a PodMonitor gives (docs/observability.md);
- `SLUICE_REAL_HOST_ADDRESS`: an address of this host that the cluster's pods reach (the model file server binds
  it); for kind, the gateway of its Docker network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLUSTER_VARIABLE = "SLUICE_REAL_CLUSTER"
PROMETHEUS_VARIABLE = "SLUICE_REAL_PROMETHEUS_URL"
HOST_ADDRESS_VARIABLE = "SLUICE_REAL_HOST_ADDRESS"


@dataclass(frozen=True)
class ExternalCluster:
    """A cluster the scenarios run against, as the environment describes it."""

    kubeconfig: Path
    prometheus_url: str
    host_address: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ExternalCluster | None:
        """The cluster `SLUICE_REAL_CLUSTER=kubeconfig` names; None when the variable is unset or empty."""
        mode = environ.get(CLUSTER_VARIABLE, "")
        if not mode:
            return None
        if mode != "kubeconfig":
            raise ValueError(f"{CLUSTER_VARIABLE} must be 'kubeconfig' or empty")
        missing = [name for name in ("KUBECONFIG", PROMETHEUS_VARIABLE, HOST_ADDRESS_VARIABLE) if not environ.get(name)]
        if missing:
            raise ValueError(f"{CLUSTER_VARIABLE}=kubeconfig needs {', '.join(missing)}")
        kubeconfig = Path(environ["KUBECONFIG"])
        if not kubeconfig.is_file():
            raise ValueError(f"KUBECONFIG {kubeconfig} is not a file")
        return cls(kubeconfig, environ[PROMETHEUS_VARIABLE], environ[HOST_ADDRESS_VARIABLE])
