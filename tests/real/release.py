"""The chart installed as a user installs it: `make images`' two images imported into the harness node's containerd
(an external cluster has them already), then `helm install` with them, a standby-capable release (leader election
through its Lease), waiting until the operator pod is Ready. Shared by the `real` fixtures, `make demo NODES=real`
and `make bench-real`."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import Prometheus
from harness.realnode import HOST_ADDRESS, RealNode
from harness.tools import find_tools
from real.support import (
    OPERATOR_IMAGE,
    POD_MONITOR,
    RELEASE,
    RELEASE_NAMESPACE,
    SERVING_IMAGE,
    SERVING_PORT_NAME,
    SERVING_SELECTOR,
    RealCluster,
    images_dir,
)

CHART = Path(__file__).resolve().parents[2] / "charts" / "sluice"


def install_release(cluster: RealCluster, prometheus_url: str) -> list[str]:
    """Install release RELEASE in RELEASE_NAMESPACE; returns the helm command prefix (binary and kubeconfig) that
    `uninstall_release` takes. Raises with helm's error, the pods and the operator's log when it fails."""
    if cluster.node is not None:
        for image in ("operator", "serving"):
            archive = images_dir() / f"{image}.oci.tar"
            if not archive.exists():
                raise FileNotFoundError(f"{archive} is missing: run `make images` first")
            cluster.node.load_image(archive)
    tools = find_tools()
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    settings = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "operator.servingImage": SERVING_IMAGE,
        "operator.prometheusUrl": prometheus_url,
        "standby.enabled": "true",
    }
    helm = [str(tools.binary("helm")), "--kubeconfig", str(cluster.kubeconfig)]
    install = ["install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace", "--wait"]
    arguments = [f"--set={key}={value}" for key, value in settings.items()]
    result = subprocess.run(
        [*helm, *install, "--timeout=5m", *arguments], capture_output=True, text=True, timeout=400, check=False
    )
    if result.returncode != 0:
        pods = cluster.kubectl("get", "pods", "-A", "-o", "wide")
        kubectl = [str(tools.binary("kubectl")), "--kubeconfig", str(cluster.kubeconfig)]
        logs = subprocess.run(
            [*kubectl, "logs", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=sluice", "--tail=60", "-p"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        raise RuntimeError(f"helm install failed:\n{result.stderr}\n{pods}\n{logs.stdout}{logs.stderr}")
    return helm


def uninstall_release(helm: list[str]) -> None:
    subprocess.run(
        [*helm, "uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", "--timeout=2m"],
        capture_output=True,
        timeout=180,
        check=False,
    )


@dataclass(frozen=True)
class InstalledNode:
    """A real node with the chart installed, a model file server serving `models` at `models_url`, and a
    Prometheus scraping the serving pods as a PodMonitor would."""

    cluster: RealCluster
    models: Path
    models_url: str
    prometheus: Prometheus


def start_installed_node(workdir: Path, stack: contextlib.ExitStack) -> InstalledNode:
    """Start all of it under `workdir` (for `make demo NODES=real` and `make bench-real`); `stack` stops it."""
    node = RealNode.start(workdir / "node")
    stack.callback(node.stop)
    cluster = RealCluster.of_node(node)
    models = workdir / "models"
    models.mkdir()
    models_url = cluster.serve_files(models)
    monitor = node.pod_monitor(*POD_MONITOR, selector=SERVING_SELECTOR, port=SERVING_PORT_NAME)
    prometheus = Prometheus.start(workdir / "prometheus", pod_monitor=monitor, address=HOST_ADDRESS)
    stack.callback(prometheus.stop)
    helm = install_release(cluster, prometheus.url)
    stack.callback(uninstall_release, helm)
    return InstalledNode(cluster, models, models_url, prometheus)
