"""What the real-node scenarios share: the cluster they run on (the harness's real node, or a cluster the
environment names: `harness.external`), the images `make images` builds, the release the chart is installed as,
the model file server, and the PodMonitor Prometheus applies."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import wait_until
from harness.external import ExternalCluster
from harness.kube import kubectl
from harness.processes import ProcessRecord, free_ports, http_ok, launch, stop_processes
from harness.prometheus import PrometheusApi
from harness.realnode import GATEWAY_NAME, GATEWAY_NAMESPACE, HOST_ADDRESS, RealNode
from harness.tools import find_tools

OPERATOR_IMAGE = "docker.io/sluice/operator:dev"
SERVING_IMAGE = "docker.io/sluice/serving:dev"
RELEASE = "sluice"
RELEASE_NAMESPACE = "sluice-system"
SERVING_SELECTOR = ("app.kubernetes.io/name", "sluice-serving")
SERVING_PORT_NAME = "http"
POD_MONITOR = ("monitoring", "sluice-serving")


def images_dir() -> Path:
    return Path(os.environ.get("SLUICE_IMAGES_DIR", Path.home() / ".cache" / "sluice-images"))


@dataclass
class RealCluster:
    """The cluster the `real` scenarios run on: its kubeconfig, a Gateway (name, namespace, listener URL as seen
    from this host), and the address of this host that its pods reach. `node` is the harness's real node, or None
    for a cluster the environment names (`make e2e-kind`), whose own Prometheus is at `prometheus_url`."""

    kubeconfig: Path
    workdir: Path
    gateway_url: str
    host_address: str
    gateway: tuple[str, str] = (GATEWAY_NAME, GATEWAY_NAMESPACE)
    node: RealNode | None = None
    prometheus_url: str | None = None
    servers: list[ProcessRecord] = field(default_factory=list)

    @classmethod
    def select(cls, environ: Mapping[str, str], workdir: Path, start_node: Callable[[], RealNode]) -> RealCluster:
        """The cluster the environment names (`harness.external`), else the harness's node `start_node` gives."""
        external = ExternalCluster.from_environment(environ)
        return cls.of_node(start_node()) if external is None else cls.of_external(external, workdir)

    @classmethod
    def of_node(cls, node: RealNode) -> RealCluster:
        return cls(node.kubeconfig, node.workdir, node.gateway_url, HOST_ADDRESS, node=node)

    @classmethod
    def of_external(cls, external: ExternalCluster, workdir: Path) -> RealCluster:
        gateway = (external.gateway_name, external.gateway_namespace)
        return cls(
            external.kubeconfig,
            workdir,
            external.gateway_url,
            external.host_address,
            gateway=gateway,
            prometheus_url=external.prometheus_url,
        )

    def kubectl(self, *args: str) -> str:
        """The pinned kubectl against this cluster; returns stdout."""
        return kubectl(find_tools().binary("kubectl"), self.kubeconfig, *args)

    def serve_files(self, directory: Path) -> str:
        """Serve `directory` over HTTP on the host address its pods reach; returns the URL."""
        if self.node is not None:
            return self.node.serve_files(directory)
        (port,) = free_ports(1)
        name = f"file-server-{port}"
        address = self.host_address
        command: list[str | Path] = [sys.executable, "-m", "http.server", "--bind", address, "--directory", directory]
        server = launch(name, [*command, str(port)], self.workdir / f"{name}.log", die_with_parent=True)
        self.servers.append(server)
        url = f"http://{self.host_address}:{port}"
        wait_until(lambda: http_ok(f"{url}/"), timeout=30, what=f"file server for {directory}", watched=[server])
        return url

    def stop(self) -> None:
        """Stop the file servers this object started (the harness's node stops its own)."""
        stop_processes(self.servers)


@dataclass(frozen=True)
class Release:
    """The chart as `helm install` left it on the real cluster."""

    namespace: str
    name: str
    prometheus: PrometheusApi

    @property
    def lease(self) -> str:
        return f"{self.name}-leader"


@dataclass(frozen=True)
class ModelServer:
    """A directory served over HTTP on the node's host address: where serving pods fetch models from."""

    directory: Path
    url: str
