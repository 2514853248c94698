"""The chart as a user installs it, on a real node: `helm install` with the images `make images` built, the
operator a real pod (its probes, its leader election, its RBAC), and serving pods that are real containers of the
serving image fetching their model over HTTP, verifying its digest and passing their readiness probes; Prometheus
finds them as a PodMonitor would and the operator's PromQL selects their series."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import yaml

from harness import wait_until
from real.support import OPERATOR_IMAGE, POD_MONITOR, SERVING_IMAGE, ModelServer, RealCluster, Release
from sluice.adapters.metrics import REQUESTS_METRIC, series_selector
from sluice.api.v1alpha1 import GROUP, VERSION
from unit.serving.support import make_classifier, rows_body

pytestmark = pytest.mark.real


def _pods(cluster: RealCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))
    pods: list[dict[str, Any]] = listed["items"]
    return pods


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_the_helm_installed_operator_runs_its_image_ready_leader_elected_and_never_forbidden(
    real_cluster: RealCluster, sluice_release: Release
) -> None:
    (pod,) = _pods(real_cluster, sluice_release.namespace, "app.kubernetes.io/name=sluice")
    assert _ready(pod)  # its readiness probe passed in a real container
    (container,) = pod["status"]["containerStatuses"]
    assert container["image"].endswith(OPERATOR_IMAGE.split("/", 1)[1]), container["image"]
    assert container["restartCount"] == 0
    holder = real_cluster.kubectl(
        "get", "lease", sluice_release.lease, "-n", sluice_release.namespace, "-o", "jsonpath={.spec.holderIdentity}"
    )
    assert pod["metadata"]["name"] in holder, holder
    log = real_cluster.kubectl("logs", "-n", sluice_release.namespace, pod["metadata"]["name"])
    assert "Forbidden" not in log, log[-3000:]


def test_serving_pods_fetch_the_model_over_http_verify_it_load_it_and_answer_through_the_service(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    model = make_classifier(model_server.directory)
    name = "classifier"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": real_namespace},
        "spec": {
            "model": {
                "version": "1.0.0",
                "uri": f"{model_server.url}/{model.joblib.name}",
                "format": "sklearn",
                "digest": model.digest,
            },
            "replicas": 1,
        },
    }
    manifest = real_cluster.workdir / f"{real_namespace}-{name}.yaml"
    manifest.write_text(yaml.safe_dump(body))
    real_cluster.kubectl("apply", "-f", str(manifest))
    selector = f"sluice.dev/modeldeployment={name}"

    def serving_ready() -> bool:
        pods = _pods(real_cluster, real_namespace, selector)
        return bool(pods) and all(_ready(pod) for pod in pods)

    wait_until(serving_ready, timeout=240, what="serving pods Ready (model fetched, verified, loaded)", interval=1)
    (pod,) = _pods(real_cluster, real_namespace, selector)
    assert pod["spec"]["containers"][0]["image"] == SERVING_IMAGE

    cluster_ip = real_cluster.kubectl("get", "service", name, "-n", real_namespace, "-o", "jsonpath={.spec.clusterIP}")
    request = urllib.request.Request(
        f"http://{cluster_ip}/v2/models/{name}/infer",
        data=rows_body(model.rows),
        headers={"Content-Type": "application/json"},
    )
    for _ in range(20):
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
    assert answer["outputs"][0]["data"] == model.expected

    # Prometheus found the pod as a PodMonitor would, and the operator's own selector reads its series, counting
    # the 20 requests once a scrape after them landed (an earlier scrape of the Ready pod holds fewer).
    prometheus = sluice_release.prometheus
    selector_promql = series_selector(real_namespace, name, "1.0.0", "stable")
    (sample,) = prometheus.wait_for_query(
        f"sum by (namespace, pod, container, job, endpoint) ({REQUESTS_METRIC}{{{selector_promql}}}) >= 20",
        timeout=60,
    )
    labels = sample["metric"]
    assert labels == {
        "namespace": real_namespace,
        "pod": pod["metadata"]["name"],
        "container": pod["spec"]["containers"][0]["name"],
        "job": "/".join(POD_MONITOR),
        "endpoint": "http",
    }
