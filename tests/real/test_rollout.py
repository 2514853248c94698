"""Rollouts on a real node, driven by the helm-installed operator pod: traffic goes through the Traefik Gateway that
routes by the HTTPRoute sluice writes, and the share each version served is counted from the answers."""

from __future__ import annotations

import collections
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from harness import wait_until
from harness.realnode import GATEWAY_NAME, GATEWAY_NAMESPACE, RealNode
from real.support import ModelServer, Release
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from unit.serving.support import ModelFiles, make_classifier, make_flipped_classifier, rows_body

pytestmark = pytest.mark.real

STEPS = [20, 50]
SETTLE_SECONDS = 2.0  # after the route's weights change: Traefik applies the new route, canary pods join


class GatewayModel:
    """One ModelDeployment behind Gateway `public`, and a client that counts which version answered."""

    def __init__(self, node: RealNode, namespace: str, name: str, model: ModelFiles, model_url: str) -> None:
        self.node, self.namespace, self.name, self.model, self.model_url = node, namespace, name, model, model_url
        self.request = urllib.request.Request(
            f"{node.gateway_url}/v2/models/{name}/infer",
            data=rows_body(model.rows),
            headers={"Content-Type": "application/json"},
        )

    def apply(self, version: str, *, uri: str | None = None, progress_deadline: str = "4m") -> None:
        """Deploy `version` of the model (served from `uri`, default the model's own file) with its digest."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "model": {
                    "version": version,
                    "uri": uri or self.model_url,
                    "format": "sklearn",
                    "digest": self.model.digest,
                },
                "replicas": 1,
                "traffic": {"gateway": {"parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}]}},
                "rollout": {"steps": STEPS, "interval": "20s", "progressDeadline": progress_deadline},
                "analysis": {"minRequests": 10, "maxErrorRate": 0.05, "onInconclusive": "Hold"},
            },
        }
        manifest = self.node.workdir / f"{self.namespace}-{self.name}-{version}.yaml"
        manifest.write_text(yaml.safe_dump(body))
        self.node.plane.kubectl("apply", "-f", str(manifest))

    def status(self) -> dict[str, Any]:
        got = self.node.plane.kubectl("get", f"{PLURAL}.{GROUP}", self.name, "-n", self.namespace, "-o", "json")
        status: dict[str, Any] = json.loads(got).get("status", {})
        return status

    def canary_weight(self) -> int | None:
        """The canary's weight in the HTTPRoute sluice owns (None before the route exists)."""
        got = self.node.plane.kubectl(
            "get",
            "httproutes.gateway.networking.k8s.io",
            self.name,
            "-n",
            self.namespace,
            "-o",
            "json",
        )
        rules = json.loads(got)["spec"]["rules"]
        weights = {ref["name"]: int(ref.get("weight", 1)) for rule in rules for ref in rule["backendRefs"]}
        return weights.get(f"{self.name}-canary", 0)

    def ask(self) -> str:
        """One prediction through the Gateway; the version that answered, or `failed:<code>`."""
        try:
            with urllib.request.urlopen(self.request, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            return f"failed:{error.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            return f"failed:{type(error).__name__}"
        return str(answer["model_version"])


def _stable(deployed: GatewayModel) -> None:
    deployed.apply("1.0.0")
    wait_until(lambda: deployed.status().get("phase") == "Stable", timeout=240, what="1.0.0 Stable", interval=1)
    wait_until(lambda: deployed.ask() == "1.0.0", timeout=60, what="1.0.0 answering through the Gateway")


def test_a_good_version_is_promoted_step_by_step_and_each_step_serves_its_weight_through_the_gateway(
    real_node: RealNode, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    model = make_classifier(model_server.directory)
    deployed = GatewayModel(real_node, real_namespace, "promoted", model, f"{model_server.url}/{model.joblib.name}")
    _stable(deployed)

    deployed.apply("2.0.0")
    served: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    weight, changed_at, deadline = 0, time.monotonic(), time.monotonic() + 360
    while time.monotonic() < deadline:
        status = deployed.status()
        if status.get("phase") == "Stable" and status.get("stableVersion") == "2.0.0":
            break
        current = deployed.canary_weight() or 0
        if current != weight:
            weight, changed_at = current, time.monotonic()
        for _ in range(20):
            answer = deployed.ask()
            if time.monotonic() - changed_at >= SETTLE_SECONDS:
                served[weight][answer] += 1
    final = deployed.status()
    assert (final.get("phase"), final.get("stableVersion")) == ("Stable", "2.0.0"), final
    for step in STEPS:
        counts = served[step]
        total = sum(counts.values())
        assert total >= 200, f"step {step}%: only {total} requests measured ({dict(served)})"
        assert not [answer for answer in counts if answer.startswith("failed")], counts
        assert abs(100 * counts["2.0.0"] / total - step) <= 5, f"step {step}%: {counts}"


def test_a_model_file_that_does_not_verify_is_never_ready_and_rolled_back_without_a_failed_request(
    real_node: RealNode, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """The user's 2.0.0 names the digest of the file they meant, but the file at the URI is another one (a
    re-trained model uploaded over it): its pods never pass readiness, the rollout ends at progressDeadline, and
    every request through the Gateway meanwhile is answered by 1.0.0."""
    model = make_classifier(model_server.directory)
    other = make_flipped_classifier(model_server.directory)
    deployed = GatewayModel(real_node, real_namespace, "unverified", model, f"{model_server.url}/{model.joblib.name}")
    _stable(deployed)

    deployed.apply("2.0.0", uri=f"{model_server.url}/{other.joblib.name}", progress_deadline="60s")
    answers: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        history = deployed.status().get("history", [])
        if any(entry["version"] == "2.0.0" for entry in history):
            break
        for _ in range(20):
            answers[deployed.ask()] += 1
    status = deployed.status()
    (entry,) = [entry for entry in status.get("history", []) if entry["version"] == "2.0.0"]
    assert entry["outcome"] == "RolledBack", entry
    assert status.get("stableVersion") == "1.0.0", status
    assert set(answers) == {"1.0.0"}, answers  # no failed request, nothing from 2.0.0
    assert sum(answers.values()) >= 200, answers
    canary_pods = real_node.plane.kubectl(
        "get", "pods", "-n", real_namespace, "-l", "sluice.dev/track=canary", "-o", "json"
    )
    for pod in json.loads(canary_pods)["items"]:
        statuses = pod.get("status", {}).get("containerStatuses", [])
        assert not any(container.get("ready") for container in statuses), pod["metadata"]["name"]


def test_a_rollout_continues_to_promotion_after_the_operator_pod_is_force_deleted_mid_rollout(
    real_node: RealNode, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """The operator pod is force-deleted (no graceful release of its Lease) while a canary serves its first step:
    the Deployment's replacement pod takes the Lease once it expires, picks the rollout up from the object's status,
    and promotes 2.0.0, with every request through the Gateway answered meanwhile."""
    model = make_classifier(model_server.directory)
    deployed = GatewayModel(real_node, real_namespace, "resumed", model, f"{model_server.url}/{model.joblib.name}")
    _stable(deployed)
    kubectl, selector = real_node.plane.kubectl, "app.kubernetes.io/name=sluice"
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
