"""Traffic on a real node beyond one model behind the Gateway: replica-ratio routing through the entry Service's
ClusterIP (kube-proxy spreads connections over the ready pods of both tracks), two models sharing one Gateway
listener and hostname, each HTTPRoute matching only its own model's paths, and header and cookie routes
(spec.rollout.match) sending testers to the canary alone through Traefik."""

from __future__ import annotations

import collections
import json
import time
import urllib.error
import urllib.request
from functools import partial

import pytest

from harness import wait_until
from real.served import ServedModel
from real.support import ModelServer, RealCluster, Release
from unit.serving.support import make_classifier, make_flipped_classifier

pytestmark = pytest.mark.real

SHARED_HOSTNAME = "models.sluice.test"


def _ready_pods(cluster: RealCluster, namespace: str, name: str) -> collections.Counter[str]:
    """Ready serving pods of ModelDeployment `name`, counted by track."""
    listed = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"sluice.dev/modeldeployment={name}", "-o", "json")
    )
    ready: collections.Counter[str] = collections.Counter()
    for pod in listed["items"]:
        conditions = pod.get("status", {}).get("conditions", [])
        if pod["metadata"].get("deletionTimestamp") is None and any(
            c["type"] == "Ready" and c["status"] == "True" for c in conditions
        ):
            ready[pod["metadata"]["labels"]["sluice.dev/track"]] += 1
    return ready


def _answers(deployed: ServedModel, version: str) -> bool:
    return deployed.ask() == version


def test_replica_ratio_routing_serves_each_version_its_share_of_pods_through_the_entry_service_cluster_ip(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """Without a Gateway the canary's share is its share of the entry Service's ready pods: at step 50 with one
    stable replica the operator runs one canary pod, and requests from this host to the ClusterIP (kube-proxy's
    rules) are answered by each version about half the time, none failing."""
    model = make_classifier(model_server.directory)
    url = f"{model_server.url}/{model.joblib.name}"
    deployed = ServedModel(real_cluster, real_namespace, "ratio", model, url, gateway=False, steps=[50], interval="90s")
    deployed.become_stable()

    deployed.apply("2.0.0")

    def both_tracks_ready() -> bool:
        status = deployed.status()
        ready = _ready_pods(real_cluster, real_namespace, "ratio")
        return status.get("canaryWeight") == 50 and ready == {"stable": 1, "canary": 1}

    wait_until(both_tracks_ready, timeout=180, what="the canary's pod Ready beside stable's", interval=1)
    wait_until(lambda: deployed.ask() == "2.0.0", timeout=30, what="kube-proxy routing to the canary pod")
    served: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 120
    while sum(served.values()) < 600 and time.monotonic() < deadline:
        served[deployed.ask()] += 1
    total = sum(served.values())
    assert _ready_pods(real_cluster, real_namespace, "ratio") == {"stable": 1, "canary": 1}, "the step ended early"
    assert total >= 400, f"only {total} requests answered in 120 s: {served}"
    assert set(served) == {"1.0.0", "2.0.0"}, served  # no failed request
    assert abs(100 * served["2.0.0"] / total - 50) <= 7, served  # the replica ratio, 1 of 2 ready pods


def test_two_models_behind_one_gateway_listener_and_hostname_each_answer_their_own_requests(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """Two ModelDeployments name the same Gateway and hostname; each HTTPRoute matches its model's paths, so each
    model's requests reach its own pods (the two models disagree on every row, so a misrouted answer shows), and a
    path of neither model or another hostname is not routed."""
    model, flipped = make_classifier(model_server.directory), make_flipped_classifier(model_server.directory)
    deployments = {
        "alpha": ServedModel(
            real_cluster,
            real_namespace,
            "alpha",
            model,
            f"{model_server.url}/{model.joblib.name}",
            hostname=SHARED_HOSTNAME,
        ),
        "beta": ServedModel(
            real_cluster,
            real_namespace,
            "beta",
            flipped,
            f"{model_server.url}/{flipped.joblib.name}",
            hostname=SHARED_HOSTNAME,
        ),
    }
    assert model.expected != flipped.expected
    for deployed in deployments.values():
        deployed.apply("1.0.0")
    for deployed in deployments.values():
        wait_until(partial(_answers, deployed, "1.0.0"), timeout=240, what=f"{deployed.name} answering", interval=1)

    for _ in range(25):
        for name, deployed in deployments.items():
            answer = deployed.answer()
            assert not isinstance(answer, str), f"{name}: {answer}"
            assert answer["model_name"] == name
            assert answer["outputs"][0]["data"] == deployed.model.expected, f"{name} answered by the other model"

    alpha = deployments["alpha"]
    assert alpha.answer("gamma") == "failed:404"  # no route for a third model's path
    request = urllib.request.Request(
        f"{alpha.entry_url}/v2/models/alpha/infer", data=b"{}", headers={"Host": "other.sluice.test"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 404  # the routes are for the shared hostname only


def test_header_and_cookie_matched_requests_reach_only_the_canary_through_the_gateway_at_a_first_step_of_zero(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    """rollout.match on a real Gateway (Traefik): at a first step of 0 the testers' requests (header `x-tester: yes`,
    or the cookie `tier=beta` among others) are answered by the canary alone, every other request (a cookie almost
    the testers' one included) by stable."""
    model = make_classifier(model_server.directory)
    match = [{"headers": [{"name": "x-tester", "value": "yes"}]}, {"cookie": {"name": "tier", "value": "beta"}}]
    rollout = {"steps": [0, 50], "interval": "90s", "progressDeadline": "4m", "match": match}
    url = f"{model_server.url}/{model.joblib.name}"
    deployed = ServedModel(real_cluster, real_namespace, "testers", model, url, extra_spec={"rollout": rollout})
    clients = {
        "header": {"x-tester": "yes"},
        "cookie": {"Cookie": "session=1; tier=beta"},
        "others": {"Cookie": "session=2; tier=betamax"},
    }
    deployed.become_stable()

    deployed.apply("2.0.0")

    wait_until(lambda: deployed.status().get("currentStep") == 0, timeout=180, what="the first step", interval=1)
    wait_until(lambda: deployed.ask(clients["header"]) == "2.0.0", timeout=60, what="the testers' route applied")
    served: dict[str, collections.Counter[str]] = {client: collections.Counter() for client in clients}
    for _ in range(30):
        for client, headers in clients.items():
            served[client][deployed.ask(headers)] += 1
    assert deployed.status().get("currentStep") == 0, "the matched-only step ended early"
    assert served == {"header": {"2.0.0": 30}, "cookie": {"2.0.0": 30}, "others": {"1.0.0": 30}}, served
