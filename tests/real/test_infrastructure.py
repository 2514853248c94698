"""The real node's infrastructure does what the sluice scenarios rely on: pods run as containers, Service names
resolve through CoreDNS, ClusterIPs route through kube-proxy, and the Traefik Gateway splits requests by an
HTTPRoute's weights."""

from __future__ import annotations

import collections
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from harness import wait_until
from harness.realnode import BUSYBOX_IMAGE, GATEWAY_NAME, GATEWAY_NAMESPACE, RealNode

pytestmark = [pytest.mark.real, pytest.mark.harness_node]

_PORT = 8080


def _backend(namespace: str, name: str) -> list[dict[str, Any]]:
    """A Deployment of one busybox httpd answering its own name, and a Service in front of it."""
    labels = {"app": name}
    container = {
        "name": "httpd",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", f"echo {name} > /www/index.html && exec httpd -f -p {_PORT} -h /www"],
        "ports": [{"containerPort": _PORT}],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": _PORT}, "periodSeconds": 1},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": _PORT}]},
    }
    return [deployment, service]


def _http_route(namespace: str, weights: dict[str, int], *, mirror_to: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [{"name": name, "port": 80, "weight": w} for name, w in weights.items()]}
    if mirror_to:
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": mirror_to, "port": 80}}}]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "split", "namespace": namespace},
        "spec": {"parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}], "rules": [rule]},
    }


def _apply(node: RealNode, name: str, documents: list[dict[str, Any]]) -> None:
    manifest = node.workdir / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    node.plane.kubectl("apply", "-f", str(manifest))


def _client_pod(namespace: str) -> dict[str, Any]:
    """A busybox pod to run `nc`/`nslookup` in."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": namespace},
        "spec": {
            "containers": [
                {"name": "client", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }


def _ask_from_client(node: RealNode, namespace: str, host: str, port: int) -> str:
    """What an HTTP/1.0 GET from the client pod to `host:port` is answered ('' when nothing answers in 3 s)."""
    request = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}; true"
    return node.plane.kubectl("exec", "-n", namespace, "client", "--", "sh", "-c", request)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode().strip())
    except urllib.error.HTTPError as error:
        return f"failed:{error.code}"


def test_pod_resolves_service_names_reaches_cluster_ips_and_gateway_splits_by_weight(
    real_node: RealNode, real_namespace: str
) -> None:
    namespace, kubectl = real_namespace, real_node.plane.kubectl
    _apply(
        real_node,
        namespace,
        [*_backend(namespace, "backend-a"), *_backend(namespace, "backend-b"), _client_pod(namespace)],
    )
    kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment", "--all", "--timeout=120s")
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/client", "--timeout=120s")
    pod_ips = kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].status.podIP}").split()
    assert len(pod_ips) == 3, pod_ips
    assert all(ip.startswith("10.245.") for ip in pod_ips), pod_ips  # addresses on the node's bridge
    cluster_ip = kubectl("get", "service", "backend-a", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}")

    # From inside a pod: the Service name resolves through CoreDNS to its ClusterIP, and a ClusterIP answers.
    lookup = kubectl("exec", "-n", namespace, "client", "--", "nslookup", f"backend-a.{namespace}.svc.cluster.local")
    assert cluster_ip in lookup, lookup
    # kube-proxy programs a new Service's rules a moment after its endpoints are ready: ask until it answers.
    wait_until(
        lambda: _ask_from_client(real_node, namespace, "backend-b", 80).rstrip().endswith("backend-b"),
        timeout=60,
        what="backend-b answering on its ClusterIP",
    )

    # Through the Gateway: an HTTPRoute weighted 80/20, the served shares counted from the answers.
    _apply(real_node, f"route-{namespace}", [_http_route(namespace, {"backend-a": 80, "backend-b": 20})])
    url = f"{real_node.gateway_url}/index.html"
    wait_until(lambda: _get(url) in {"backend-a", "backend-b"}, timeout=60, what="the Gateway routing the HTTPRoute")
    served: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 60
    while sum(served.values()) < 500 and time.monotonic() < deadline:
        served[_get(url)] += 1
    total = sum(served.values())
    assert total >= 400, f"only {total} requests answered in 60 s"
    assert set(served) == {"backend-a", "backend-b"}, served
    assert abs(100 * served["backend-a"] / total - 80) <= 5, served

    # Traefik v3.6 implements no RequestMirror filter: a rule carrying one is answered with 500s, its backends
    # unused (so sluice's shadow phase cannot run behind this Gateway, and the operator refuses to mirror through it:
    # tests/real/test_gates.py; docs/local-control-plane.md). When a Traefik upgrade implements it, this fails, and
    # the shadow scenarios can move onto the real node.
    mirrored = _http_route(namespace, {"backend-a": 100}, mirror_to="backend-b")
    _apply(real_node, f"mirror-{namespace}", [mirrored])
    wait_until(lambda: _get(url) == "failed:500", timeout=60, what="the Gateway applying the mirrored route")
    assert {_get(url) for _ in range(20)} == {"failed:500"}


def test_a_pods_traffic_never_leaves_the_node(real_node: RealNode, real_namespace: str) -> None:
    """A packet a pod sends past the node (an outside address, or a ClusterIP no Service holds, which kube-proxy
    does not rewrite) is dropped on the node: nothing outside the harness's network namespaces answers it."""
    _apply(real_node, real_namespace, [_client_pod(real_namespace)])
    real_node.plane.kubectl("wait", "-n", real_namespace, "--for=condition=Ready", "pod/client", "--timeout=120s")
    for outside in ("198.51.100.7", "10.96.255.254"):  # TEST-NET-2; the Service range's last, unallocated address
        assert _ask_from_client(real_node, real_namespace, outside, 80) == "", outside
