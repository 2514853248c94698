"""Fixtures of the integration tests (the control plane and namespaces come from tests/conftest.py).

Add fixtures here; keep each block's section comment so several engineers can extend this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import RESTRICTED_POD_SECURITY_LABELS, create_namespace, delete_namespace, unique_name
from harness.control_plane import ControlPlane
from integration.chart_identity import ChartInstall, install_chart, service_account_kubeconfig

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


# --- The Helm chart and its ServiceAccount (tests/integration/chart_identity.py) ----------------------------------


@pytest.fixture(scope="session")
def chart_install(
    control_plane: ControlPlane, kube_api_client: ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartInstall]:
    """The chart rendered with its default values (cluster-wide) and applied by an admin into a fresh namespace
    labelled `pod-security.kubernetes.io/enforce=restricted`; the release name is unique, so the ClusterRole is too.

    The chart's operator Deployment runs there on a kwok fake node (its container does nothing); run the real
    operator as a local process with `operator_kubeconfig` and `chart_install.operator_env()`.
    """
    namespace = create_namespace(kube_api_client, labels=RESTRICTED_POD_SECURITY_LABELS, prefix="sluice-system")
    release = unique_name("sluice")
    installed = install_chart(control_plane, tmp_path_factory.mktemp("chart"), namespace=namespace, release=release)
    yield installed
    for kind in ("clusterrolebinding", "clusterrole"):
        control_plane.kubectl("delete", kind, release, "--ignore-not-found")
    delete_namespace(kube_api_client, namespace)


@pytest.fixture(scope="session")
def operator_kubeconfig(
    control_plane: ControlPlane, chart_install: ChartInstall, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest API, valid 2 h): the operator
    started with it has exactly the chart's RBAC, not admin."""
    return service_account_kubeconfig(
        control_plane,
        chart_install.namespace,
        chart_install.service_account,
        tmp_path_factory.mktemp("operator-identity") / "kubeconfig",
    )
