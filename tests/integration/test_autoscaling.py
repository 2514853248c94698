"""spec.autoscaling on the real control plane, with the kube-controller-manager's own HPA controller reading an
external metric from a stand-in metrics API (`integration.external_metrics`): the HPAs sluice applies, the stable
track scaled under load and left at the HPA's count, the canary's HPA sized by its weight, and promotion keeping
the count."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, create_namespace, delete_namespace, wait_until
from integration import test_reconcile
from integration.external_metrics import API, ExternalMetrics
from integration.operator_support import CountingProxy, status_of
from integration.test_reconcile import QUIET_SECONDS, ModelDeployments, model
from sluice.api.v1alpha1 import ACTION_ANNOTATION, ACTION_ID_ANNOTATION

pytestmark = pytest.mark.integration

operator, md = test_reconcile.operator, test_reconcile.md
"""test_reconcile's fixtures: the operator under the documented RBAC, behind the counting proxy, and its helper."""

METRIC = "requests_per_second"
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": 6,
    "metrics": [
        {"type": "External", "external": {"metric": {"name": METRIC}, "target": {"type": "AverageValue",
                                                                                  "averageValue": "10"}}}
    ],
}  # fmt: skip
GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}


@pytest.fixture(scope="module")
def external_metrics(control_plane: ControlPlane, kube_api_client: ApiClient) -> Iterator[ExternalMetrics]:
    certificates = control_plane.certificates
    metrics = ExternalMetrics(certificates.serving_cert, certificates.serving_key).start()
    namespace = create_namespace(kube_api_client, prefix="external-metrics")
    API.register(kube_api_client, namespace, metrics.port)
    probe = "namespaces/default/probe"
    wait_until(lambda: API.answers(kube_api_client, probe), timeout=60, what=f"{API.group} routed", interval=0.5)
    yield metrics
    API.unregister(kube_api_client, namespace)
    delete_namespace(kube_api_client, namespace)
    metrics.stop()


def hpa(md: ModelDeployments, name: str) -> dict[str, Any] | None:
    return md.read(f"/apis/autoscaling/v2/namespaces/{md.namespace}/horizontalpodautoscalers/{name}")


def replicas(md: ModelDeployments, name: str) -> int:
    deployment = md.deployment(name)
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


def bounds(found: dict[str, Any]) -> tuple[str, int, int]:
    return found["spec"]["scaleTargetRef"]["name"], found["spec"]["minReplicas"], found["spec"]["maxReplicas"]


def test_the_hpa_scales_the_stable_track_under_load_sluice_keeps_its_count_and_promotion_hands_it_over(
    md: ModelDeployments, external_metrics: ExternalMetrics, proxy: CountingProxy
) -> None:
    external_metrics.value = "50"  # 50 requests/s at a target of 10 per pod: 5 pods
    spec = {"model": model(), "replicas": 2, "traffic": GATEWAY, "autoscaling": AUTOSCALING,
            "rollout": {"steps": [50], "interval": "10m"}}  # fmt: skip
    md.create("scaled", spec)
    md.wait(lambda: hpa(md, "scaled-stable") is not None, "the stable HPA")
    stable_hpa = hpa(md, "scaled-stable")
    assert stable_hpa is not None
    assert bounds(stable_hpa) == ("scaled-stable", 1, 6)
    assert stable_hpa["spec"]["metrics"] == AUTOSCALING["metrics"]

    md.wait_ready("scaled", 5)  # the HPA controller's count, from spec.replicas' 2
    assert external_metrics.reads > 0
    proxy.reset()
    time.sleep(QUIET_SECONDS)
    assert replicas(md, "scaled-stable") == 5
    assert not proxy.writes("/deployments/scaled-stable"), "sluice wrote the HPA's Deployment"
    assert not proxy.writes("/horizontalpodautoscalers/"), "sluice wrote an unchanged HPA"

    md.patch("scaled", {"spec": {"model": model("2.0.0")}})
    md.wait(lambda: hpa(md, "scaled-canary") is not None, "the canary HPA")
    canary_hpa = hpa(md, "scaled-canary")
    assert canary_hpa is not None
    assert bounds(canary_hpa) == ("scaled-canary", 1, 3)  # half of 1..6, at least 1
    md.wait(lambda: md.deployment("scaled-canary") is not None, "the canary Deployment")
    assert replicas(md, "scaled-canary") == 3  # created at its share of stable's 5

    action = {ACTION_ANNOTATION: "promote-full", ACTION_ID_ANNOTATION: "promote-autoscaled"}
    md.patch("scaled", {"metadata": {"annotations": action}})
    counts: list[int] = []

    def promoted() -> bool:
        counts.append(replicas(md, "scaled-stable"))
        status = status_of(md.get("scaled"))
        return (status.get("phase"), status.get("stableVersion")) == ("Stable", "2.0.0")

    md.wait(promoted, "2.0.0 promoted")
    assert min(counts) == 5, counts
    md.wait_ready("scaled", 5)
    md.wait(lambda: hpa(md, "scaled-canary") is None, "the canary HPA removed")
    assert replicas(md, "scaled-canary") == 0
    assert replicas(md, "scaled-stable") == 5


def test_turning_autoscaling_on_hands_the_replicas_to_the_hpa_without_a_dip_and_off_gives_them_back(
    md: ModelDeployments, external_metrics: ExternalMetrics
) -> None:
    external_metrics.value = "30"  # 3 pods: what the Deployment already runs
    md.create("handed", {"model": model(), "replicas": 3})
    md.wait_ready("handed", 3)
    md.patch("handed", {"spec": {"autoscaling": AUTOSCALING}})
    counts: list[int] = []

    def hpa_at_three() -> bool:
        counts.append(replicas(md, "handed-stable"))
        found = hpa(md, "handed-stable")
        return found is not None and (found.get("status") or {}).get("desiredReplicas") == 3

    md.wait(hpa_at_three, "the stable HPA deciding 3 replicas")
    assert min(counts) == 3, counts  # server-side apply did not drop sluice's replicas to the default 1
    deployment = md.deployment("handed-stable")
    assert deployment is not None
    owners = [entry["manager"] for entry in deployment["metadata"]["managedFields"]
              if "f:replicas" in entry.get("fieldsV1", {}).get("f:spec", {})]  # fmt: skip
    assert owners == ["sluice-replicas"], owners

    md.patch("handed", {"spec": {"autoscaling": None, "replicas": 2}})
    md.wait(lambda: hpa(md, "handed-stable") is None, "the stable HPA removed")
    md.wait_ready("handed", 2)
