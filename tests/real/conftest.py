"""Fixtures of the real-node scenarios: the cluster they run on, the built images in its containerd, the chart
installed with `helm install` as a user runs it, a model file server on a host address its pods reach, and a
Prometheus that discovers serving pods as a Prometheus Operator PodMonitor would.

The cluster is the harness's real node (`real_node`), unless the environment names one (`harness.external`,
`make e2e-kind`): then the images are expected to be loaded into it already and its own Prometheus and Gateway
are used. The images come from `make images` (OCI archives in `SLUICE_IMAGES_DIR`, default
`~/.cache/sluice-images`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness import Prometheus, create_namespace, delete_namespace, new_api_client
from harness.external import ExternalCluster
from harness.prometheus import PrometheusApi
from real.release import install_release, uninstall_release
from real.support import (
    POD_MONITOR,
    RELEASE,
    RELEASE_NAMESPACE,
    SERVING_PORT_NAME,
    SERVING_SELECTOR,
    ModelServer,
    RealCluster,
    Release,
)

HARNESS_NODE_ONLY = "harness_node"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against an external cluster, the checks of the harness's own node infrastructure are deselected."""
    if ExternalCluster.from_environment() is None:
        return
    kept = [item for item in items if item.get_closest_marker(HARNESS_NODE_ONLY) is None]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(scope="session")
def real_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    workdir = tmp_path_factory.mktemp("real-cluster")
    cluster = RealCluster.select(os.environ, workdir, lambda: request.getfixturevalue("real_node"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def real_namespace(real_cluster: RealCluster) -> Iterator[str]:
    with new_api_client(real_cluster.kubeconfig) as api_client:
        name = create_namespace(api_client, prefix="real")
        yield name
        delete_namespace(api_client, name, wait=True, timeout=120)


@pytest.fixture(scope="session")
def real_prometheus(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusApi]:
    if real_cluster.node is None:
        yield PrometheusApi(str(real_cluster.prometheus_url))
        return
    monitor = real_cluster.node.pod_monitor(*POD_MONITOR, selector=SERVING_SELECTOR, port=SERVING_PORT_NAME)
    server = Prometheus.start(
        tmp_path_factory.mktemp("real-prometheus"), pod_monitor=monitor, address=real_cluster.host_address
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model_server(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> ModelServer:
    directory = tmp_path_factory.mktemp("models")
    return ModelServer(directory=directory, url=real_cluster.serve_files(directory))


@pytest.fixture(scope="session")
def sluice_release(real_cluster: RealCluster, real_prometheus: PrometheusApi) -> Iterator[Release]:
    """`make images`' two images imported into the node's containerd (an external cluster has them already), then
    `helm install` of the chart with them (a standby-capable release: leader election through its Lease), waiting
    until the operator pod is Ready."""
    helm = install_release(real_cluster, real_prometheus.url)
    try:
        yield Release(namespace=RELEASE_NAMESPACE, name=RELEASE, prometheus=real_prometheus)
    finally:
        uninstall_release(helm)
