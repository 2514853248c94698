"""The validation gate on a real node: the helm-installed operator pod scores the canary on a held-out dataset by
calling the canary's Service through cluster DNS (`<name>-canary.<namespace>.svc`, CoreDNS and kube-proxy), before
the Gateway gives the canary any traffic.

The shadow phase has no real-node scenario: Traefik (the harness's Gateway) does not implement the HTTPRoute
RequestMirror filter and answers every request of a route carrying one with a 500 (docs/local-control-plane.md);
the shadow scenarios run on the kwok cluster with the harness's mirror (tests/e2e/test_ml_gates.py)."""

from __future__ import annotations

import pytest

from harness import wait_until
from real.served import ServedModel
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
