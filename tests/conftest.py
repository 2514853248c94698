"""Shared pytest fixtures: a real local Kubernetes control plane and a Prometheus (see `harness`).

All fixtures are lazy: nothing starts unless a test asks for it, so unit runs
(`pytest -m "not integration and not e2e"`) start no process. Mark tests that use them `integration` or `e2e`.

Session-scoped (started once, on first use, stopped by PID at the end of the session):
- `control_plane` -> `harness.ControlPlane`: etcd, kube-apiserver (RBAC, PodSecurity), kube-controller-manager,
  kube-scheduler and kwok with 2 fake nodes (pods become Running and Ready), Gateway API CRDs installed.
  Use `control_plane.kubeconfig` (admin kubeconfig path, e.g. for the operator's KUBECONFIG),
  `control_plane.api_client()`, `control_plane.kubectl(...)`, `control_plane.logs()`.
- `kube_api_client` -> an admin `kubernetes.client.ApiClient` for `control_plane`.
- `prometheus` -> `harness.Prometheus` (scrape/evaluation interval 1 s): `.url`,
  `.add_target(name, "127.0.0.1:PORT", labels={...})`, `.remove_target(name)`, `.query(promql)`,
  `.wait_for_query(promql)`.

- `real_node` -> `harness.realnode.RealNode`: the control plane on a host address pods reach, with one real node
  (containerd, kubelet, kube-proxy, CoreDNS, Traefik and Gateway `public` in `default`). Needs root; tests that use
  it are marked `real`. `.kubeconfig`, `.gateway_url`, `.plane`, `.load_image(archive)`.

Module-scoped:
- `metrics_server` -> `harness.metrics_server.MetricsServer`: metrics-server for `real_node`, registered as
  metrics.k8s.io (HPA `Resource` metrics, `kubectl top`), ready once the node's usage is known; stopped and
  unregistered after the module.

Function-scoped:
- `namespace` -> name (str) of a fresh namespace whose `default` ServiceAccount exists, with a Gateway `public` that
  the harness's Gateway stand-in accepts routes of (`harness.gateway_standin`); deleted afterwards.
- `restricted_namespace` -> the same, labelled `pod-security.kubernetes.io/enforce=restricted`.
- `real_namespace` (tests/real/conftest.py) -> a fresh namespace on the `real` scenarios' cluster; deleted afterwards.

The Helm chart (session-scoped, tests/integration/chart_identity.py), for integration and e2e tests:
- `chart_install` -> `ChartInstall`: the chart's default (cluster-wide) rendering, with notifications.secretName set,
  applied into a restricted namespace.
- `operator_kubeconfig` -> kubeconfig path authenticating as the chart's ServiceAccount (not admin).

When a test that used the control plane or Prometheus fails, the tail of every component's log is attached to its
report (shown in pytest's failure output as "component logs"). The full logs stay in pytest's temp directory.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from harness import (
    RESTRICTED_POD_SECURITY_LABELS,
    ControlPlane,
    Prometheus,
    create_namespace,
    delete_namespace,
    unique_name,
)
from harness.gateway_standin import create_gateway
from harness.metrics_server import MetricsServer
from harness.realnode import NODE_NAME, RealNode
from integration.chart_identity import ChartInstall, install_chart, service_account_kubeconfig
from integration.operator_support import CountingProxy
from unit.chart.chart_support import NOTIFICATION_SECRET

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


class _HasLogs(Protocol):
    def log_tails(self, lines: int = 30) -> str: ...


_RUNNING_COMPONENTS = pytest.StashKey[list[_HasLogs]]()
_FIXTURES_WITH_LOGS = {
    "control_plane",
    "kube_api_client",
    "prometheus",
    "namespace",
    "restricted_namespace",
    "real_node",
    "metrics_server",
    "real_namespace",
    "real_cluster",
}


def _register(config: pytest.Config, component: _HasLogs) -> None:
    config.stash.setdefault(_RUNNING_COMPONENTS, []).append(component)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    plane = ControlPlane.start(tmp_path_factory.mktemp("control-plane"))
    _register(pytestconfig, plane)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube_api_client(control_plane: ControlPlane) -> Iterator[ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Prometheus]:
    server = Prometheus.start(tmp_path_factory.mktemp("prometheus"))
    _register(pytestconfig, server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[RealNode]:
    node = RealNode.start(tmp_path_factory.mktemp("real-node"))
    _register(pytestconfig, node)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def metrics_server(real_node: RealNode, pytestconfig: pytest.Config) -> Iterator[MetricsServer]:
    server = MetricsServer.start(real_node.plane, real_node.workdir / "logs", nodes=[NODE_NAME])
    _register(pytestconfig, server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace(kube_api_client: ApiClient) -> Iterator[str]:
    name = create_namespace(kube_api_client)
    create_gateway(kube_api_client, name)
    yield name
    delete_namespace(kube_api_client, name)


@pytest.fixture
def restricted_namespace(kube_api_client: ApiClient) -> Iterator[str]:
    name = create_namespace(kube_api_client, labels=RESTRICTED_POD_SECURITY_LABELS, prefix="restricted")
    create_gateway(kube_api_client, name)
    yield name
    delete_namespace(kube_api_client, name)


# --- The Helm chart and its ServiceAccount (tests/integration/chart_identity.py) ----------------------------------


@pytest.fixture(scope="module")
def proxy(control_plane: ControlPlane) -> Iterator[CountingProxy]:
    """A proxy in front of the API server that records every request an operator under test sends."""
    counting = CountingProxy(control_plane.server_url, control_plane.certificates.ca_cert).start()
    yield counting
    counting.stop()


@pytest.fixture(scope="session")
def chart_install(
    control_plane: ControlPlane, kube_api_client: ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartInstall]:
    """The chart rendered with its default values (cluster-wide) and notifications.secretName, applied by an admin
    into a fresh namespace labelled `pod-security.kubernetes.io/enforce=restricted`; the release name is unique, so
    the ClusterRole is too.

    The chart's operator Deployment runs there on a kwok fake node (its container does nothing); run the real
    operator as a local process with `operator_kubeconfig` and `chart_install.operator_env()`.
    """
    namespace = create_namespace(kube_api_client, labels=RESTRICTED_POD_SECURITY_LABELS, prefix="sluice-system")
    release = unique_name("sluice")
    installed = install_chart(
        control_plane,
        tmp_path_factory.mktemp("chart"),
        namespace=namespace,
        release=release,
        set_values=(f"notifications.secretName={NOTIFICATION_SECRET}",),
    )
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the components' log tails to the report of a failing test that used them."""
    report: pytest.TestReport = yield
    uses_components = _FIXTURES_WITH_LOGS & set(getattr(item, "fixturenames", ()))
    components = item.config.stash.get(_RUNNING_COMPONENTS, [])
    if report.failed and uses_components and components:
        report.sections.append(("component logs", "\n".join(component.log_tails() for component in components)))
    return report
