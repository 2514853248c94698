"""metrics-server, the resource metrics API (metrics.k8s.io), as a host process beside the control plane.

It scrapes every node's kubelet (`/metrics/resource` on port 10250, at the node's InternalIP) each 10 s, its
shortest resolution, with the admin's client certificate and without verifying the kubelets' self-signed serving
certificates (`--kubelet-insecure-tls`, as most local clusters run it). It serves on 127.0.0.1 with the control
plane's serving certificate, authenticates the aggregator's front-proxy requests and authorizes them with the API
server (delegated, as in a cluster), and the aggregator routes metrics.k8s.io to it through Service
`kube-system/metrics-server` (`harness.aggregation`). The kube-controller-manager's HPA controller reads pods' CPU
and memory from it for `Resource` metrics; `kubectl top` works.

Started by the tests that need it (the `metrics_server` fixture), not with every real node: a pod's usage is known
only after two scrapes, so it is ready about 20 s after it starts.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.aggregation import AggregatedApi
from harness.control_plane import ControlPlane
from harness.kube import new_api_client
from harness.processes import LOOPBACK, ProcessRecord, free_ports, launch, stop_processes, tail, wait_until
from harness.tools import find_tools

METRICS_API = AggregatedApi("metrics.k8s.io", "v1beta1", "metrics-server")
NAMESPACE = "kube-system"
RESOLUTION_SECONDS = 10


@dataclass(frozen=True)
class MetricsServer:
    """A running metrics-server registered with the control plane's aggregator; `.stop()` removes both."""

    process: ProcessRecord
    kubeconfig: Path

    @classmethod
    def start(
        cls, plane: ControlPlane, workdir: Path, *, nodes: Sequence[str] = (), timeout: float = 90.0
    ) -> MetricsServer:
        """Start it, register metrics.k8s.io, and return once the API lists nodes and each of `nodes` has usage."""
        certificates = plane.certificates
        (port,) = free_ports(1)
        kubeconfig = plane.kubeconfig
        command: list[str | Path] = [
            find_tools().binary("metrics-server"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--tls-cert-file={certificates.serving_cert}",
            f"--tls-private-key-file={certificates.serving_key}",
            "--kubelet-insecure-tls",
            "--kubelet-preferred-address-types=InternalIP",
            f"--metric-resolution={RESOLUTION_SECONDS}s",
            "--kubelet-request-timeout=5s",  # below 90% of the resolution, which the default 10 s is not
        ]
        process = launch("metrics-server", command, workdir / "metrics-server.log", die_with_parent=True)
        server = cls(process, kubeconfig)
        try:
            with new_api_client(kubeconfig) as api_client:
                METRICS_API.register(api_client, NAMESPACE, port)
                for resource in ["nodes", *(f"nodes/{node}" for node in nodes)]:
                    wait_until(
                        functools.partial(METRICS_API.answers, api_client, resource),
                        timeout=timeout,
                        what=f"{METRICS_API.path}/{resource}",
                        watched=[server.process],
                        interval=1.0,
                    )
        except BaseException:
            server.stop()
            raise
        return server

    def log_tails(self, lines: int = 30) -> str:
        return f"----- metrics-server ({self.process.log_path}) -----\n{tail(self.process.log_path, lines)}"

    def stop(self) -> None:
        """Unregister the API (when registered), then stop the process."""
        with new_api_client(self.kubeconfig) as api_client, contextlib.suppress(Exception):
            METRICS_API.unregister(api_client, NAMESPACE)
        stop_processes([self.process])
