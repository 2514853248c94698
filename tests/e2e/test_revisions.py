"""Revisions end to end: a change of spec.serving alone is a canary rollout like a new model version, on the same
harness as test_canary_rollouts (the real control plane with kwok pods, the real operator, real `sluice-serving`
processes started with each pod's container env, the real Prometheus).

An env-only change that makes the server fail half its requests (`SLUICE_FAULT_ERROR_RATE`, the model server's
fault injection) is canaried and rolled back on its own metrics while the stable pods stay exactly as they were
(same pods, same pod-template-hash), with the operator under the Helm chart's identity (no Secrets access) though
the change references a Secret; an image-only change is promoted and becomes the stable revision. With
`rollout.capacity: Neutral` a rollout of 3 replicas, sampled every 0.5 s through promotion and back to a full
stable track, never has fewer than 3 Ready pods nor more than 4 pods.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from e2e.support import CHART_IDENTITY, STEPS, Scenario, finished, load
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from sluice.core.children import MODELDEPLOYMENT_LABEL, TRACK_LABEL

pytestmark = pytest.mark.e2e

FAULTY_ENV = {
    "env": [
        {"name": "SLUICE_FAULT_ERROR_RATE", "value": "0.5"},
        {"name": "STORE_KEY", "valueFrom": {"secretKeyRef": {"name": "model-store", "key": "access-key"}}},
    ]
}
"""Half the requests fail (the model server's fault injection), and a Secret is referenced: the operator, under the
chart's identity (no Secrets access), only names it in the pod template."""


def set_serving(scenario: Scenario, serving: dict[str, Any]) -> None:
    patch = {"spec": {"serving": serving}}
    scenario.custom.patch_namespaced_custom_object(GROUP, VERSION, scenario.namespace, PLURAL, scenario.name, patch)


def stable_pods(scenario: Scenario) -> set[tuple[str, str, str]]:
    """The stable track's pods: name, uid and pod-template-hash."""
    response: Any = client.CoreV1Api(scenario.api_client).list_namespaced_pod(
        scenario.namespace, label_selector=f"{TRACK_LABEL}=stable", _preload_content=False
    )
    pods = json.loads(response.data)["items"]
    return {
        (pod["metadata"]["name"], pod["metadata"]["uid"], pod["metadata"]["labels"].get("pod-template-hash", ""))
        for pod in pods
        if "deletionTimestamp" not in pod["metadata"]
    }


def stable_template(scenario: Scenario) -> dict[str, Any]:
    response: Any = client.AppsV1Api(scenario.api_client).read_namespaced_deployment(
        f"{scenario.name}-stable", scenario.namespace, _preload_content=False
    )
    template: dict[str, Any] = json.loads(response.data)["spec"]["template"]
    return template


@pytest.mark.parametrize("operator", [CHART_IDENTITY], indirect=True)
def test_an_env_only_change_is_canaried_and_rolled_back_on_its_own_metrics_with_the_stable_pods_untouched(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0")
    pods_before, template_before = stable_pods(scenario), stable_template(scenario)
    assert pods_before

    with load(scenario) as generator:
        set_serving(scenario, FAULTY_ENV)
        timeline = scenario.follow(lambda s: finished("RolledBack")(s) and s.get("phase") == "RolledBack", "rollback")

    status = scenario.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("1.0.0", "AnalysisFailed"), entry
    assert "error rate" in entry["message"], entry
    assert entry["revision"]["number"] == 2, entry
    assert entry["revision"]["changes"] == "env SLUICE_FAULT_ERROR_RATE added, env STORE_KEY added", entry
    assert entry["stableRevision"]["number"] == 1, entry
    assert status["stableRevision"]["number"] == 1
    assert max(timeline.weights) == STEPS[0], f"the canary had live traffic, never past the first step: {timeline}"
    assert scenario.route_weights()[f"{scenario.name}-canary"] == 0
    assert generator.stats.by_version[("1.0.0", 500)] > 0, "the canary's own failures, measured"
    assert stable_template(scenario) == template_before
    assert stable_pods(scenario) == pods_before
    log = scenario.operator.log_path.read_text()
    assert "Forbidden" not in log, scenario.operator.log_tail()


def test_an_image_only_change_is_promoted_and_becomes_the_stable_revision(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0")
    image = "registry.example.com/sluice-serving:2"

    with load(scenario) as generator:
        set_serving(scenario, {"image": image})
        timeline = scenario.follow(
            lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "the new image promoted", timeout=90
        )

    status = scenario.status()
    assert [w for w in timeline.weights if w > 0][:2] == STEPS, f"every step in order: {timeline.weights}"
    assert status["stableRevision"]["number"] == 2
    assert status["stableRevision"]["changes"].startswith("image "), status["stableRevision"]
    assert status["history"][-1]["revision"]["number"] == 2
    assert stable_template(scenario)["spec"]["containers"][0]["image"] == image
    assert not [key for key in generator.stats.by_version if key[1] != 200], generator.stats.by_version


class PodCounts:
    """Samples the serving pods of both tracks every 0.5 s in a thread: the fewest Ready, the most in existence
    (pods being deleted are not counted as either)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.fewest_ready: int | None = None
        self.most: int = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodCounts:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            response: Any = client.CoreV1Api(self.scenario.api_client).list_namespaced_pod(
                self.scenario.namespace,
                label_selector=f"{MODELDEPLOYMENT_LABEL}={self.scenario.name}",
                _preload_content=False,
            )
            pods = [pod for pod in json.loads(response.data)["items"] if "deletionTimestamp" not in pod["metadata"]]
            ready = sum(
                any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
                for pod in pods
            )
            self.fewest_ready = ready if self.fewest_ready is None else min(self.fewest_ready, ready)
            self.most = max(self.most, len(pods))
            self.samples += 1


def test_a_capacity_neutral_rollout_never_has_fewer_than_replicas_ready_nor_more_than_one_pod_over(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    spec = scenario.spec("1.0.0")
    spec["replicas"] = 3
    spec["rollout"]["capacity"] = "Neutral"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": scenario.name}}
    scenario.custom.create_namespaced_custom_object(GROUP, VERSION, scenario.namespace, PLURAL, {**body, "spec": spec})
    scenario.wait(
        lambda: (
            scenario.status().get("phase") == "Stable" and scenario.dataplane.ready_versions()[("1.0.0", "stable")] == 3
        ),
        "1.0.0 Stable on 3 ready pods",
    )

    with load(scenario), PodCounts(scenario) as counts:
        scenario.set_version("2.0.0")
        timeline = scenario.follow(
            lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "2.0.0 promoted", timeout=120
        )
        scenario.wait(
            lambda: (
                scenario.dataplane.ready_versions()[("2.0.0", "stable")] == 3
                and not any(track == "canary" for _, track in scenario.dataplane.ready_versions())
            ),
            "3 stable pods of 2.0.0 and no canary pod",
        )

    print(f"capacity Neutral: {counts.samples} samples, fewest Ready {counts.fewest_ready}, most pods {counts.most}")
    assert [w for w in timeline.weights if w > 0][:2] == STEPS, timeline.weights
    assert counts.samples >= 10, "sampled throughout the rollout"
    assert counts.fewest_ready is not None
    assert counts.fewest_ready >= 3
    assert counts.most <= 4
