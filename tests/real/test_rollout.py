"""Rollouts on a real node, driven by the helm-installed operator pod: traffic goes through the Traefik Gateway that
routes by the HTTPRoute sluice writes, and the share each version served is counted from the answers."""

from __future__ import annotations

import collections
import json
import time

import pytest

from harness import wait_until
from real.served import STEPS, ServedModel
from real.support import ModelServer, RealCluster, Release
from sluice.adapters.metrics import REQUESTS_METRIC, series_selector
from unit.serving.support import digest_of, make_batch_of_one_classifier, make_classifier, make_flipped_classifier

pytestmark = pytest.mark.real


def test_a_good_version_is_promoted_step_by_step_and_each_step_serves_its_weight_through_the_gateway(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    model = make_classifier(model_server.directory)
    deployed = ServedModel(real_cluster, real_namespace, "promoted", model, f"{model_server.url}/{model.joblib.name}")
    deployed.become_stable()

    served = deployed.ask_through_promotion("2.0.0")
    for step in STEPS:
        counts = served[step]
        total = sum(counts.values())
        assert total >= 200, f"step {step}%: only {total} requests measured ({dict(served)})"
        assert not [answer for answer in counts if answer.startswith("failed")], counts
        assert abs(100 * counts["2.0.0"] / total - step) <= 5, f"step {step}%: {counts}"


def test_a_version_whose_answers_fail_is_rolled_back_on_its_own_errors_while_stable_serves_throughout(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """The user's 2.0.0 is an ONNX export that loads and passes readiness but fails every batch inside onnxruntime.
    Through the Gateway the canary's share of requests fails with 500s; the operator reads those from the canary's
    own series, rolls it back, and stable answered every request it got (its series counts no 5xx)."""
    model = make_classifier(model_server.directory)
    deployed = ServedModel(real_cluster, real_namespace, "failing", model, f"{model_server.url}/{model.joblib.name}")
    deployed.become_stable()

    broken = make_batch_of_one_classifier(model_server.directory)
    deployed.apply("2.0.0", uri=f"{model_server.url}/{broken.name}", artifact=("onnx", digest_of(broken)))
    answers, entry = deployed.ask_until_ended("2.0.0", 300)
    status = deployed.status()
    assert entry["outcome"] == "RolledBack", entry
    assert "error rate" in entry.get("message", ""), entry
    assert status.get("stableVersion") == "1.0.0", status
    assert set(answers) == {"1.0.0", "failed:500"}, answers  # 2.0.0 never answered; its answers failed
    wait_until(lambda: deployed.ask() == "1.0.0" and deployed.canary_weight() == 0, timeout=60, what="stable only")

    def served(version: str, track: str, codes: str) -> float:
        selector = series_selector(real_namespace, "failing", version, track)
        promql = f'sum({REQUESTS_METRIC}{{{selector},code=~"{codes}"}}) or vector(0)'
        return sum(sluice_release.prometheus.query_values(promql))

    assert served("2.0.0", "canary", "5..") > 0
    assert served("1.0.0", "stable", "2..") > 0
    assert served("1.0.0", "stable", "5..") == 0


def test_a_model_file_that_does_not_verify_is_never_ready_and_rolled_back_without_a_failed_request(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """The user's 2.0.0 names the digest of the file they meant, but the file at the URI is another one (a
    re-trained model uploaded over it): its pods never pass readiness, the rollout ends at progressDeadline, and
    every request through the Gateway meanwhile is answered by 1.0.0."""
    model = make_classifier(model_server.directory)
    other = make_flipped_classifier(model_server.directory)
    deployed = ServedModel(real_cluster, real_namespace, "unverified", model, f"{model_server.url}/{model.joblib.name}")
    deployed.become_stable()

    deployed.apply("2.0.0", uri=f"{model_server.url}/{other.joblib.name}", progress_deadline="60s")
    answers, entry = deployed.ask_until_ended("2.0.0", 240)
    status = deployed.status()
    assert entry["outcome"] == "RolledBack", entry
    assert status.get("stableVersion") == "1.0.0", status
    assert set(answers) == {"1.0.0"}, answers  # no failed request, nothing from 2.0.0
    assert sum(answers.values()) >= 200, answers
    canary_pods = real_cluster.kubectl(
        "get", "pods", "-n", real_namespace, "-l", "sluice.dev/track=canary", "-o", "json"
    )
    for pod in json.loads(canary_pods)["items"]:
        statuses = pod.get("status", {}).get("containerStatuses", [])
        assert not any(container.get("ready") for container in statuses), pod["metadata"]["name"]


def test_a_rollout_continues_to_promotion_after_the_operator_pod_is_force_deleted_mid_rollout(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """The operator pod is force-deleted (no graceful release of its Lease) while a canary serves its first step:
    the Deployment's replacement pod takes the Lease once it expires, picks the rollout up from the object's status,
    and promotes 2.0.0, with every request through the Gateway answered meanwhile."""
    model = make_classifier(model_server.directory)
    deployed = ServedModel(real_cluster, real_namespace, "resumed", model, f"{model_server.url}/{model.joblib.name}")
    deployed.become_stable()
    kubectl, selector = real_cluster.kubectl, "app.kubernetes.io/name=sluice"
    (old_pod,) = kubectl("get", "pods", "-n", sluice_release.namespace, "-l", selector, "-o", "name").split()

    deployed.apply("2.0.0")
    answers: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 120
    while (deployed.canary_weight() or 0) < STEPS[0] and time.monotonic() < deadline:
        answers[deployed.ask()] += 1
    assert deployed.canary_weight() == STEPS[0], "the canary never reached its first step"
    kubectl("delete", "-n", sluice_release.namespace, old_pod, "--grace-period=0", "--force", "--wait=false")

    deadline = time.monotonic() + 360
    while time.monotonic() < deadline:
        status = deployed.status()
        if status.get("phase") == "Stable" and status.get("stableVersion") == "2.0.0":
            break
        for _ in range(20):
            answers[deployed.ask()] += 1
    final = deployed.status()
    assert (final.get("phase"), final.get("stableVersion")) == ("Stable", "2.0.0"), final
    assert not [answer for answer in answers if answer.startswith("failed")], answers
    (new_pod,) = kubectl("get", "pods", "-n", sluice_release.namespace, "-l", selector, "-o", "name").split()
    assert new_pod != old_pod
    holder = kubectl(
        "get", "lease", sluice_release.lease, "-n", sluice_release.namespace, "-o", "jsonpath={.spec.holderIdentity}"
    )
    assert new_pod.removeprefix("pod/") in holder, holder
