"""Pod discovery for Debian's Prometheus, which is built without `kubernetes_sd_configs`.

`python -m harness.pod_discovery --kubeconfig K --output FILE` lists the cluster's pods every second and writes
them as a file_sd target list with the `__meta_kubernetes_*` labels that `kubernetes_sd_configs` role pod gives
(one target per container port: address, namespace, pod name, phase, readiness, container name, port name, pod
labels and `labelpresent` markers). The scrape job then applies exactly a PodMonitor's relabelling to them
(`harness.prometheus.pod_monitor_job`), so the series carry the labels a Prometheus Operator user's do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from harness.kube import new_api_client


def _sanitized(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", label)


def pod_targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The target groups `kubernetes_sd_configs` role pod would produce for `pods` (API objects as dicts)."""
    groups = []
    for pod in pods:
        metadata, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        pod_ip = status.get("podIP")
        if not pod_ip:
            continue
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        pod_labels = {
            "__meta_kubernetes_namespace": metadata["namespace"],
            "__meta_kubernetes_pod_name": metadata["name"],
            "__meta_kubernetes_pod_ip": pod_ip,
            "__meta_kubernetes_pod_phase": status.get("phase", ""),
            "__meta_kubernetes_pod_ready": str(ready).lower(),
            "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
        }
        for key, value in (metadata.get("labels") or {}).items():
            pod_labels[f"__meta_kubernetes_pod_label_{_sanitized(key)}"] = value
            pod_labels[f"__meta_kubernetes_pod_labelpresent_{_sanitized(key)}"] = "true"
        for container in spec["containers"]:
            for port in container.get("ports") or []:
                labels = {
                    **pod_labels,
                    "__meta_kubernetes_pod_container_name": container["name"],
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                }
                groups.append({"targets": [f"{pod_ip}:{port['containerPort']}"], "labels": labels})
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    arguments = parser.parse_args()
    from kubernetes import client

    with new_api_client(arguments.kubeconfig) as api_client:
        core = client.CoreV1Api(api_client)
        while True:
            try:
                response: Any = core.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=10)
                pods = json.loads(response.data)["items"]
            except Exception as error:  # the API server may be restarting; try again in a second
                print(f"listing pods failed: {error!r}", flush=True)
                time.sleep(1)
                continue
            temporary = arguments.output.with_suffix(".tmp")
            temporary.write_text(json.dumps(pod_targets(pods)))
            os.replace(temporary, arguments.output)
            time.sleep(1)


if __name__ == "__main__":
    main()
