"""Fixtures of the real-node scenarios: the built images in the node's containerd, the chart installed with
`helm install` as a user runs it, a model file server on the node's host address, and a Prometheus that discovers
serving pods as a Prometheus Operator PodMonitor would.

The images come from `make images` (OCI archives in `SLUICE_IMAGES_DIR`, default `~/.cache/sluice-images`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Prometheus
from harness.kube import kubectl
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
    ModelServer,
    Release,
    images_dir,
)


@pytest.fixture(scope="session")
def real_prometheus(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    monitor = real_node.pod_monitor(*POD_MONITOR, selector=SERVING_SELECTOR, port=SERVING_PORT_NAME)
    server = Prometheus.start(tmp_path_factory.mktemp("real-prometheus"), pod_monitor=monitor, address=HOST_ADDRESS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model_server(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> ModelServer:
    directory = tmp_path_factory.mktemp("models")
    return ModelServer(directory=directory, url=real_node.serve_files(directory))


@pytest.fixture(scope="session")
def sluice_release(real_node: RealNode, real_prometheus: Prometheus) -> Iterator[Release]:
    """`make images`' two images imported into the node's containerd, then `helm install` of the chart with them
    (a standby-capable release: leader election through its Lease), waiting until the operator pod is Ready."""
    for image in ("operator", "serving"):
        archive = images_dir() / f"{image}.oci.tar"
        if not archive.exists():
            raise FileNotFoundError(f"{archive} is missing: run `make images` first")
        real_node.load_image(archive)
    tools = find_tools()
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    settings = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "operator.servingImage": SERVING_IMAGE,
        "operator.prometheusUrl": real_prometheus.url,
        "standby.enabled": "true",
    }
    arguments = [f"--set={key}={value}" for key, value in settings.items()]
    helm = [
        str(tools.binary("helm")),
        "--kubeconfig",
        str(real_node.kubeconfig),
        "install",
        RELEASE,
        str(Path(__file__).resolve().parents[2] / "charts" / "sluice"),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout=5m",
        *arguments,
    ]
    result = subprocess.run(helm, capture_output=True, text=True, timeout=400, check=False)
    if result.returncode != 0:
        pods = kubectl(tools.binary("kubectl"), real_node.kubeconfig, "get", "pods", "-A", "-o", "wide")
        kubectl_logs = [
            "logs",
            "-n",
            RELEASE_NAMESPACE,
            "-l",
            "app.kubernetes.io/name=sluice",
            "--tail=60",
            "--previous",
        ]
        logs = subprocess.run(
            [str(tools.binary("kubectl")), "--kubeconfig", str(real_node.kubeconfig), *kubectl_logs],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        raise RuntimeError(f"helm install failed:\n{result.stderr}\n{pods}\n{logs.stdout}{logs.stderr}")
    try:
        yield Release(namespace=RELEASE_NAMESPACE, name=RELEASE, prometheus=real_prometheus)
    finally:
        subprocess.run(
            [*helm[:3], "uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", "--timeout=2m"],
            capture_output=True,
            timeout=180,
            check=False,
        )
