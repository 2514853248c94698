"""spec.autoscaling on a real node: the kube-controller-manager's HPA controller reads the serving pods' CPU from
metrics-server (`harness.metrics_server`), scales the stable track under load through the Gateway, and the
promotion of the next version keeps that count."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness import wait_until
from harness.metrics_server import MetricsServer
from real.served import ServedModel, Traffic
from real.support import ModelServer, RealCluster, Release
from sluice.api.v1alpha1 import ACTION_ANNOTATION, ACTION_ID_ANNOTATION, GROUP, PLURAL
from unit.serving.support import make_classifier

pytestmark = [pytest.mark.real, pytest.mark.harness_node]  # the harness's metrics-server

CPU_TARGET = {"type": "Utilization", "averageUtilization": 50}
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": 3,
    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": CPU_TARGET}}],
}
# 50m requested, so half of it (25m) is the target: an idle server stays far below, one client's requests far above.
SERVING = {"resources": {"requests": {"cpu": "50m"}}}


class Autoscaled:
    """The stable track of `deployed` and its HPA, read with kubectl."""

    def __init__(self, cluster: RealCluster, deployed: ServedModel) -> None:
        self.cluster, self.deployed = cluster, deployed
        self.counts: list[int] = []

    def counting(self, condition: Callable[[], bool]) -> Callable[[], bool]:
        """`condition`, recording the stable count in `counts` each time it is asked."""

        def check() -> bool:
            self.counts.append(self.stable_replicas())
            return condition()

        return check

    def read(self, kind: str, name: str) -> dict[str, Any]:
        got = self.cluster.kubectl("get", kind, name, "-n", self.deployed.namespace, "-o", "json")
        found: dict[str, Any] = json.loads(got)
        return found

    def stable_replicas(self) -> int:
        return int(self.read("deployment", f"{self.deployed.name}-stable")["spec"]["replicas"])

    def hpa_status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.read("hpa", f"{self.deployed.name}-stable").get("status", {})
        return status

    def utilization(self) -> int | None:
        """The average CPU utilization (% of the request) the HPA last read, None before its first reading."""
        current = [m["resource"]["current"] for m in self.hpa_status().get("currentMetrics") or [] if "resource" in m]
        return current[0].get("averageUtilization") if current else None


def stable_on(deployed: ServedModel, version: str) -> bool:
    status = deployed.status()
    return (status.get("phase"), status.get("stableVersion")) == ("Stable", version)


def test_the_hpa_scales_the_stable_track_on_cpu_under_load_and_promotion_keeps_the_count(
    real_cluster: RealCluster,
    sluice_release: Release,
    model_server: ModelServer,
    real_namespace: str,
    metrics_server: MetricsServer,
) -> None:
    model = make_classifier(model_server.directory)
    deployed = ServedModel(
        real_cluster, real_namespace, "autoscaled", model, f"{model_server.url}/{model.joblib.name}",
        steps=[50], interval="3m", extra_spec={"autoscaling": AUTOSCALING, "serving": SERVING},
    )  # fmt: skip
    autoscaled = Autoscaled(real_cluster, deployed)
    deployed.become_stable()
    wait_until(lambda: autoscaled.utilization() is not None, timeout=60, what="the HPA's first CPU reading", interval=1)
    idle = autoscaled.utilization()
    print(f"idle: {idle}% of the CPU request, {autoscaled.stable_replicas()} stable replica(s)")
    assert autoscaled.stable_replicas() == 1, autoscaled.hpa_status()

    with Traffic(deployed, seconds=330) as traffic:  # ends with the block; its timeouts sum to 300 s
        began = time.monotonic()
        wait_until(lambda: autoscaled.stable_replicas() > 1, timeout=60, what="the HPA scaling stable", interval=1)
        took = time.monotonic() - began
        print(f"under load: {autoscaled.utilization()}% of the request, stable scaled after {took:.0f} s")

        # The count each second from the rollout's start to 2.0.0 Stable. The HPA does not scale down meanwhile
        # (its default 5-minute stabilization window), so a lower count would be the promotion's.
        before = autoscaled.stable_replicas()
        deployed.apply("2.0.0")
        canary_at_50 = autoscaled.counting(lambda: deployed.canary_weight() == 50)
        wait_until(canary_at_50, timeout=90, what="the canary at 50%", interval=0.5)
        promote_requested = time.monotonic()
        action = {ACTION_ANNOTATION: "promote-full", ACTION_ID_ANNOTATION: "promote-autoscaled"}
        real_cluster.kubectl("annotate", f"{PLURAL}.{GROUP}", deployed.name, "-n", real_namespace,
                             *(f"{key}={value}" for key, value in action.items()))  # fmt: skip
        promoted = autoscaled.counting(lambda: stable_on(deployed, "2.0.0"))
        wait_until(promoted, timeout=150, what="2.0.0 promoted", interval=0.5)
        promotion = time.monotonic() - promote_requested
    counts = autoscaled.counts
    print(f"stable replicas: {before} at the rollout's start, then about each second {counts} (promoted in "
          f"{promotion:.0f} s); answers {traffic.answers}")  # fmt: skip
    assert min(counts) >= before, counts
    assert autoscaled.read("deployment", f"{deployed.name}-stable")["status"].get("readyReplicas", 0) >= before
    assert not [answer for answer in traffic.answers if answer.startswith("failed")], traffic.answers
