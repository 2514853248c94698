"""The gates before any live weight on a real node. The validation gate: the helm-installed operator pod scores the
canary on a held-out dataset by calling the canary's Service through cluster DNS (`<name>-canary.<namespace>.svc`,
CoreDNS and kube-proxy), before the Gateway gives the canary any traffic.

The shadow phase: Traefik (the harness's Gateway) does not implement the HTTPRoute RequestMirror filter and answers
every request of a route carrying one with a 500 (docs/local-control-plane.md). Its GatewayClass says so in
`status.supportedFeatures`, and the operator (reading the Gateway and the class with the chart's RBAC) holds the
rollout before the shadow phase instead of writing the filter: every request keeps being answered by stable. The
shadow phase itself runs on the kwok cluster with the harness's mirror (tests/e2e/test_ml_gates.py)."""

from __future__ import annotations

import json
import time

import pytest

from harness import wait_until
from real.served import ServedModel, Traffic
from real.support import ModelServer, RealCluster, Release
from unit.serving.support import classification_dataset_csv, make_classifier, make_flipped_classifier

pytestmark = pytest.mark.real

MIN_ACCURACY = 0.85
DATASET_ROWS = 300


def test_the_operator_pod_scores_canaries_through_cluster_dns_and_the_gate_stops_a_worse_one_before_any_traffic(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    dataset = real_cluster.workdir / f"{real_namespace}-holdout.csv"
    dataset.write_text(classification_dataset_csv())
    real_cluster.kubectl("create", "configmap", "holdout", "-n", real_namespace, f"--from-file=holdout.csv={dataset}")
    model, flipped = make_classifier(model_server.directory), make_flipped_classifier(model_server.directory)
    validation = {"configMapRef": {"name": "holdout", "key": "holdout.csv"}, "metric": "accuracy", "min": MIN_ACCURACY}
    url = f"{model_server.url}/{model.joblib.name}"
    deployed = ServedModel(real_cluster, real_namespace, "gated", model, url, extra_spec={"validation": validation})
    deployed.become_stable()

    # 2.0.0 (labels flipped) is scored on the 300 rows and stopped at weight 0: no request reaches it.
    deployed.apply("2.0.0", uri=f"{model_server.url}/{flipped.joblib.name}", artifact=("sklearn", flipped.digest))
    weights: set[int | None] = set()
    answers, entry = deployed.ask_until_ended(
        "2.0.0", 240, batch=10, between=lambda: weights.add(deployed.canary_weight())
    )
    status = deployed.status()
    assert entry["outcome"] == "RolledBack", entry
    scored = status["validation"]
    assert (scored["version"], scored["passed"], scored["samples"]) == ("2.0.0", False, DATASET_ROWS), scored
    assert scored["score"] < MIN_ACCURACY, scored
    assert weights <= {0}, weights
    assert set(answers) == {"1.0.0"}, answers

    # 3.0.0 (the good model again) is scored through the same names, passes, and gets its first step's weight.
    deployed.apply("3.0.0")
    wait_until(lambda: (deployed.canary_weight() or 0) > 0, timeout=240, what="3.0.0 past the gate, at its first step")
    scored = deployed.status()["validation"]
    assert (scored["version"], scored["passed"], scored["samples"]) == ("3.0.0", True, DATASET_ROWS), scored
    assert scored["score"] >= MIN_ACCURACY, scored


HOLD_SECONDS = 30.0
"""How long requests go on once the canary is ready and the rollout held (three rollout intervals)."""


def route_filters(deployed: ServedModel) -> list[object]:
    """The filters of the HTTPRoute sluice owns for `deployed`."""
    route = ["get", "httproutes.gateway.networking.k8s.io", deployed.name, "-n", deployed.namespace, "-o", "json"]
    got = deployed.cluster.kubectl(*route)
    return [f for rule in json.loads(got)["spec"]["rules"] for f in rule.get("filters", [])]


def progressing(deployed: ServedModel) -> dict[str, str]:
    return next((c for c in deployed.status().get("conditions", []) if c["type"] == "Progressing"), {})


@pytest.mark.harness_node  # Traefik's GatewayClass: another cluster's Gateway may well mirror
def test_a_shadow_rollout_behind_traefik_never_mirrors_and_every_request_is_answered_by_stable(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    gateway_class = real_cluster.kubectl("get", "gatewayclass", "traefik", "-o", "json")
    features = {item["name"] for item in json.loads(gateway_class)["status"]["supportedFeatures"]}
    print(f"GatewayClass traefik status.supportedFeatures: {sorted(features)}")
    assert {"HTTPRoute", "Gateway"} <= features, features
    assert "HTTPRouteRequestMirror" not in features, features
    model = make_classifier(model_server.directory)
    shadow = {"percent": 100, "checks": 1, "minAgreement": 0.9}
    rollout = {"steps": [20, 50], "interval": "10s", "progressDeadline": "4m", "shadow": shadow}
    url = f"{model_server.url}/{model.joblib.name}"
    deployed = ServedModel(real_cluster, real_namespace, "shadowed", model, url, extra_spec={"rollout": rollout})
    deployed.become_stable()

    # 2.0.0 with rollout.shadow: the canary starts, the rollout holds before its shadow phase, nothing is mirrored.
    deployed.apply("2.0.0")
    filters: list[object] = []
    ready = "jsonpath={.status.readyReplicas}"
    canary_ready = ("get", "deployment", "shadowed-canary", "-n", real_namespace, "-o", ready)

    def held_with_a_ready_canary() -> bool:
        filters.extend(route_filters(deployed))
        held = progressing(deployed).get("reason") == "GatewayLacksRequestMirror"
        return held and real_cluster.kubectl(*canary_ready) == "1"

    with Traffic(deployed, seconds=240) as traffic:
        wait_until(held_with_a_ready_canary, timeout=180, what="2.0.0's canary ready, its rollout held", interval=1)
        held_until = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < held_until:
            filters.extend(route_filters(deployed))
            assert deployed.canary_weight() == 0
            time.sleep(1)
    status, condition = deployed.status(), progressing(deployed)
    print(f"shadow held behind Traefik: {sum(traffic.answers.values())} requests, {dict(traffic.answers)}")
    assert filters == []
    assert set(traffic.answers) == {"1.0.0"}, traffic.answers
    assert sum(traffic.answers.values()) >= 100, traffic.answers
    assert (status["phase"], status.get("canaryWeight", 0)) == ("Shadowing", 0), status
    assert condition["status"] == "False", condition
    assert "GatewayClass traefik of Gateway default/public does not list HTTPRouteRequestMirror" in condition["message"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "GatewayLacksRequestMirror"), stalled
    events = real_cluster.kubectl("get", "events", "-n", real_namespace, "-o", "json")
    warnings = [e for e in json.loads(events)["items"] if e["reason"] == "GatewayLacksRequestMirror"]
    assert [(e["type"], e["message"]) for e in warnings] == [("Warning", condition["message"])], warnings

    # rollout.shadow removed: the rollout goes on to its first live step through the same Gateway.
    deployed.extra_spec = {"rollout": {key: value for key, value in rollout.items() if key != "shadow"}}
    deployed.apply("2.0.0")
    wait_until(lambda: deployed.canary_weight() == 20, timeout=60, what="2.0.0 at its first step", interval=1)
    assert route_filters(deployed) == []
