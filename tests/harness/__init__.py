"""Real-process test substrate: a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok fake nodes) and a Prometheus with file-based service discovery, all on loopback.

See tests/conftest.py for the pytest fixtures and docs/local-control-plane.md for the design.
"""

from harness.control_plane import ControlPlane
from harness.kube import (
    RESTRICTED_POD_SECURITY_LABELS,
    apply_manifests,
    create_namespace,
    delete_namespace,
    new_api_client,
    unique_name,
)
from harness.processes import free_port, wait_until
from harness.prometheus import Prometheus

__all__ = [
    "RESTRICTED_POD_SECURITY_LABELS",
    "ControlPlane",
    "Prometheus",
    "apply_manifests",
    "create_namespace",
    "delete_namespace",
    "free_port",
    "new_api_client",
    "unique_name",
    "wait_until",
]
