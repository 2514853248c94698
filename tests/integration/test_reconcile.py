"""The operator reconciling ModelDeployments on the real local control plane: children, readiness, scaling,
deletion, semantic validation, restarts, and no writes for an unchanged object.

The operator runs as the real `sluice-operator` subprocess under a ServiceAccount bound to the documented RBAC
rules, behind a proxy that counts its requests. Every ModelDeployment lives in a namespace enforcing the
`restricted` Pod Security Standard, so every serving pod in these tests was admitted under it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness import ControlPlane, unique_name, wait_until
from integration.operator_support import (
    CountingProxy,
    OperatorProcess,
    condition,
    create_operator_identity,
    status_of,
    write_token_kubeconfig,
)
from integration.sluice_crd import install_crd
from sluice.adapters.kube import KubeApi, KubeCluster
from sluice.adapters.routers import GatewayAPIRouter, ReplicaRatioRouter
from sluice.api.v1alpha1 import ACTION_ANNOTATION, ACTION_ID_ANNOTATION, GROUP, PLURAL, VERSION, GatewayTraffic
from sluice.core.children import Owner

pytestmark = pytest.mark.integration

TIMEOUT = 90.0
RESYNC_SECONDS = 3
QUIET_SECONDS = 2 * RESYNC_SECONDS + 1
"""Long enough for every loop to have reconciled at least twice."""


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    proxy: CountingProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    install_crd(control_plane)
    token = create_operator_identity(kube_api_client, unique_name("sluice-system"))
    workdir = tmp_path_factory.mktemp("operator")
    process = OperatorProcess(
        write_token_kubeconfig(workdir / "kubeconfig", proxy.url, token),
        workdir / "operator.log",
        {"SLUICE_RESYNC_SECONDS": str(RESYNC_SECONDS), "SLUICE_PROMETHEUS_URL": "http://127.0.0.1:9"},
    ).start()
    yield process
    process.stop()


@pytest.fixture
def md(operator: OperatorProcess, kube_api_client: ApiClient, restricted_namespace: str) -> ModelDeployments:
    return ModelDeployments(kube_api_client, restricted_namespace, operator)


class ModelDeployments:
    """ModelDeployments and their children in one namespace, through the admin client."""

    def __init__(self, api_client: ApiClient, namespace: str, operator: OperatorProcess) -> None:
        self.namespace = namespace
        self.operator = operator
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def cluster(self) -> KubeCluster:
        """The operator's own Kubernetes adapter, with the admin client."""
        return KubeCluster(KubeApi(self.api_client, TIMEOUT), "sluice-tests")

    def path(self, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{name}"

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}
        return cast(
            dict[str, Any], self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        )

    def get(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        )

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def read(self, path: str) -> dict[str, Any] | None:
        """The object at the API path as JSON, None when absent."""
        serialized = self.api_client.param_serialize("GET", path, header_params={"Accept": "application/json"})
        response = self.api_client.call_api(*serialized)
        response.read()  # type: ignore[no-untyped-call]
        if response.status == 404:
            return None
        assert response.status == 200, response.data
        assert response.data is not None
        return cast(dict[str, Any], json.loads(response.data))

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self.read(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}")

    def service(self, name: str) -> dict[str, Any] | None:
        return self.read(f"/api/v1/namespaces/{self.namespace}/services/{name}")

    def route(self, name: str) -> dict[str, Any] | None:
        return self.read(f"/apis/gateway.networking.k8s.io/v1/namespaces/{self.namespace}/httproutes/{name}")

    def wait(self, check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        try:
            wait_until(check, timeout=timeout, what=what, interval=0.5)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n--- operator log ---\n{self.operator.log_tail()}") from None
        assert self.operator.is_running(), self.operator.log_tail()

    def wait_ready(self, name: str, replicas: int) -> dict[str, Any]:
        def ready() -> bool:
            obj = self.get(name)
            return condition(obj, "Ready").get("status") == "True" and status_of(obj).get("readyReplicas") == replicas

        self.wait(ready, f"{name} Ready with {replicas} ready replicas")
        return self.get(name)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        pods = self.read(f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}")
        assert pods is not None
        return cast(list[dict[str, Any]], pods["items"])


def model(version: str = "1.0.0") -> dict[str, Any]:
    return {"version": version, "uri": f"https://models.example.com/iris/{version}/model.onnx", "format": "onnx"}


def wait_quiet(proxy: CountingProxy, seconds: float = QUIET_SECONDS, timeout: float = TIMEOUT) -> None:
    """Until the operator made no write request for `seconds`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proxy.reset()
        time.sleep(seconds)
        if not proxy.writes():
            return
    raise AssertionError(f"the operator kept writing: {proxy.writes()}")


def test_a_new_modeldeployment_becomes_ready_with_ready_pods(md: ModelDeployments) -> None:
    md.create("iris", {"model": model(), "replicas": 2})
    obj = md.wait_ready("iris", 2)
    status = status_of(obj)
    assert status["phase"] == "Stable"
    assert status["stableVersion"] == "1.0.0"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["selector"] == "sluice.dev/modeldeployment=iris,sluice.dev/track=stable"

    stable = md.deployment("iris-stable")
    assert stable is not None
    [owner] = stable["metadata"]["ownerReferences"]
    assert (owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == (obj["metadata"]["uid"], True, True)
    pods = md.pods("sluice.dev/modeldeployment=iris,sluice.dev/track=stable,sluice.dev/version=1.0.0")
    assert len(pods) == 2
    ready = [c for pod in pods for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
    assert [c["status"] for c in ready] == ["True", "True"], "kwok makes admitted pods Ready"
    entry, canary = md.service("iris"), md.service("iris-canary")
    assert entry is not None
    assert canary is not None
    assert entry["spec"]["selector"] == {"sluice.dev/modeldeployment": "iris"}
    assert canary["spec"]["selector"] == {"sluice.dev/modeldeployment": "iris", "sluice.dev/track": "canary"}
    assert md.route("iris") is None
    assert md.deployment("iris-canary") is None
    owner = Owner.from_metadata(obj["metadata"])
    assert asyncio.run(ReplicaRatioRouter(md.cluster()).get_weight(owner)) == 0, "no canary pods: no canary share"


def test_an_unchanged_modeldeployment_costs_no_write_requests(md: ModelDeployments, proxy: CountingProxy) -> None:
    md.create("quiet", {"model": model(), "replicas": 1})
    md.wait_ready("quiet", 1)
    wait_quiet(proxy)

    proxy.reset()
    md.patch("quiet", {"metadata": {"labels": {"poke": "1"}}})  # a watch event: the loop wakes up at once
    md.wait(lambda: proxy.count("GET", md.path("quiet")) >= 3, "three reconciles (the poke and two resyncs)")
    assert proxy.writes() == [], "a reconcile of an unchanged object wrote"


def test_scaling_by_spec_and_by_the_scale_subresource(md: ModelDeployments) -> None:
    md.create("scaled", {"model": model(), "replicas": 1})
    md.wait_ready("scaled", 1)

    md.patch("scaled", {"spec": {"replicas": 3}})
    md.wait_ready("scaled", 3)
    stable = md.deployment("scaled-stable")
    assert stable is not None
    assert stable["spec"]["replicas"] == 3

    md.custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, md.namespace, PLURAL, "scaled", {"spec": {"replicas": 2}}
    )
    md.wait_ready("scaled", 2)
    scale = cast(
        dict[str, Any], md.custom.get_namespaced_custom_object_scale(GROUP, VERSION, md.namespace, PLURAL, "scaled")
    )
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["replicas"] == 2
    assert scale["status"]["selector"] == "sluice.dev/modeldeployment=scaled,sluice.dev/track=stable"


def test_changed_resources_roll_out_as_a_canary_and_reach_the_stable_deployment_at_promotion(
    md: ModelDeployments,
) -> None:
    md.create("sized", {"model": model(), "replicas": 1})
    md.wait_ready("sized", 1)
    md.patch("sized", {"spec": {"serving": {"resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi"}}}}})
    new = {
        "requests": {"cpu": "250m", "ephemeral-storage": "256Mi", "memory": "256Mi"},
        "limits": {"cpu": "1", "ephemeral-storage": "2Gi", "memory": "2Gi"},
    }

    def resources(name: str) -> dict[str, Any] | None:
        deployment = md.deployment(name)
        return None if deployment is None else deployment["spec"]["template"]["spec"]["containers"][0]["resources"]

    md.wait(lambda: resources("sized-canary") == new, "the new resources on the canary Deployment")
    assert resources("sized-stable") != new
    canary_revision = status_of(md.get("sized"))["canaryRevision"]
    assert (canary_revision["number"], canary_revision["changes"]) == (2, "resources changed")

    action = {ACTION_ANNOTATION: "promote-full", ACTION_ID_ANNOTATION: "promote-resources"}
    md.patch("sized", {"metadata": {"annotations": action}})
    md.wait(lambda: resources("sized-stable") == new, "the new resources on the stable Deployment")
    md.wait(lambda: status_of(md.get("sized")).get("phase") == "Stable", "the new revision Stable")
    assert status_of(md.get("sized"))["stableRevision"]["number"] == 2


def test_deleting_a_modeldeployment_removes_its_children(md: ModelDeployments) -> None:
    md.create("doomed", {"model": model(), "replicas": 1})
    md.wait_ready("doomed", 1)
    md.custom.delete_namespaced_custom_object(GROUP, VERSION, md.namespace, PLURAL, "doomed")

    def all_gone() -> bool:
        children = [md.deployment("doomed-stable"), md.service("doomed"), md.service("doomed-canary")]
        return all(child is None for child in children) and not md.pods("sluice.dev/modeldeployment=doomed")

    md.wait(all_gone, "garbage collection of the children")


def test_an_invalid_spec_is_reported_and_a_fixed_one_recovers(md: ModelDeployments) -> None:
    bad_query = 'avg_over_time(acc{ns="{{ns}}"}[{{interval}}])'
    md.create("flawed", {"model": model(), "analysis": {"metrics": [{"name": "acc", "query": bad_query, "min": 0.9}]}})

    def rejected() -> bool:
        return condition(md.get("flawed"), "Ready").get("reason") == "InvalidSpec"

    md.wait(rejected, "Ready=False InvalidSpec")
    ready = condition(md.get("flawed"), "Ready")
    assert ready["status"] == "False"
    assert "{{ns}}" in ready["message"]
    assert md.deployment("flawed-stable") is None
    events = md.core.list_namespaced_event(md.namespace, field_selector="involvedObject.name=flawed").items
    assert [(e.type, e.reason) for e in events] == [("Warning", "InvalidSpec")]

    good_query = 'avg_over_time(acc{ns="{{namespace}}"}[{{interval}}])'
    md.patch("flawed", {"spec": {"analysis": {"metrics": [{"name": "acc", "query": good_query, "min": 0.9}]}}})
    md.wait_ready("flawed", 1)


def test_an_operator_restart_changes_nothing(
    md: ModelDeployments, operator: OperatorProcess, proxy: CountingProxy
) -> None:
    md.create("steady", {"model": model(), "replicas": 2})
    md.wait_ready("steady", 2)
    wait_quiet(proxy)

    def versions() -> dict[str, str]:
        stable, entry = md.deployment("steady-stable"), md.service("steady")
        assert stable is not None
        assert entry is not None
        return {
            "modeldeployment": md.get("steady")["metadata"]["resourceVersion"],
            "deployment": stable["metadata"]["resourceVersion"],
            "service": entry["metadata"]["resourceVersion"],
        }

    before = versions()
    operator.stop()
    proxy.reset()
    operator.start()
    md.wait(lambda: proxy.count("GET", md.path("steady")) >= 2, "the restarted operator to reconcile twice")
    assert proxy.writes(f"/namespaces/{md.namespace}/") == []
    assert versions() == before


def test_a_gateway_splits_traffic_with_an_owned_http_route(md: ModelDeployments) -> None:
    gateway = {"parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["iris.example.com"]}
    md.create("routed", {"model": model(), "replicas": 1, "traffic": {"gateway": gateway}})
    md.wait_ready("routed", 1)
    entry = md.service("routed")
    assert entry is not None
    assert entry["spec"]["selector"] == {"sluice.dev/modeldeployment": "routed", "sluice.dev/track": "stable"}
    route = md.route("routed")
    assert route is not None
    assert route["spec"]["hostnames"] == ["iris.example.com"]
    backends = [(ref["name"], ref["weight"]) for ref in route["spec"]["rules"][0]["backendRefs"]]
    assert backends == [("routed", 100), ("routed-canary", 0)]
    owner = Owner.from_metadata(md.get("routed")["metadata"])
    assert asyncio.run(GatewayAPIRouter(md.cluster(), GatewayTraffic.model_validate(gateway)).get_weight(owner)) == 0

    md.patch("routed", {"spec": {"traffic": None}})

    md.wait(lambda: md.route("routed") is None, "the HTTPRoute to be removed once spec.traffic.gateway is")
    entry = md.service("routed")
    assert entry is not None
    assert entry["spec"]["selector"] == {"sluice.dev/modeldeployment": "routed"}


def test_a_deleted_or_rescaled_or_reweighted_child_is_repaired_at_once_not_at_the_next_resync(
    md: ModelDeployments, operator: OperatorProcess, tmp_path: Path
) -> None:
    """Events of the children wake their owner: with a 10-minute resync, every child is repaired within seconds."""
    operator.stop()
    patient = OperatorProcess(
        operator.kubeconfig, tmp_path / "operator.log", {**operator.env, "SLUICE_RESYNC_SECONDS": "600"}
    )
    md.operator = patient.start()
    try:
        gateway = {"parentRefs": [{"name": "public", "namespace": "gateways"}]}
        md.create("mended", {"model": model(), "replicas": 1, "traffic": {"gateway": gateway}})
        md.wait_ready("mended", 1)
        soon = 30.0
        deletions: list[tuple[str, Callable[[], object], Callable[[], dict[str, Any] | None]]] = [
            (
                "Service",
                lambda: md.core.delete_namespaced_service("mended-canary", md.namespace),
                lambda: md.service("mended-canary"),
            ),
            (
                "HTTPRoute",
                lambda: md.custom.delete_namespaced_custom_object(
                    "gateway.networking.k8s.io", "v1", md.namespace, "httproutes", "mended"
                ),
                lambda: md.route("mended"),
            ),
            (
                "Deployment",
                lambda: md.apps.delete_namespaced_deployment("mended-stable", md.namespace),
                lambda: md.deployment("mended-stable"),
            ),
        ]
        for kind, delete, read in deletions:
            uid = (read() or {})["metadata"]["uid"]
            delete()

            def recreated(read: Callable[[], dict[str, Any] | None] = read, uid: str = uid) -> bool:
                child = read()
                return child is not None and child["metadata"]["uid"] != uid

            md.wait(recreated, f"the deleted {kind} recreated", timeout=soon)
        md.wait_ready("mended", 1)

        md.apps.patch_namespaced_deployment_scale("mended-stable", md.namespace, {"spec": {"replicas": 3}})
        md.wait(lambda: replicas_of(md.deployment("mended-stable")) == 1, "the stable Deployment back to 1", soon)

        route = md.route("mended")
        assert route is not None
        rules = route["spec"]["rules"]
        rules[0]["backendRefs"][0]["weight"], rules[0]["backendRefs"][1]["weight"] = 0, 100
        md.custom.patch_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", md.namespace, "httproutes", "mended", {"spec": {"rules": rules}}
        )
        md.wait(lambda: route_weights(md.route("mended")) == [100, 0], "the route's weights back to 100/0", soon)
    finally:
        patient.stop()
        md.operator = operator.start()


def replicas_of(deployment: dict[str, Any] | None) -> int | None:
    return None if deployment is None else int(deployment["spec"]["replicas"])


def route_weights(route: dict[str, Any] | None) -> list[int]:
    return [] if route is None else [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]


def test_a_canary_that_prometheus_cannot_judge_is_rolled_back(md: ModelDeployments) -> None:
    """The operator's Prometheus (127.0.0.1:9) refuses connections: every check is Errored, so the canary goes."""
    rollout = {"steps": [50], "interval": "2s", "progressDeadline": "60s"}
    md.create(
        "unjudged", {"model": model(), "replicas": 1, "rollout": rollout, "analysis": {"maxConsecutiveErrors": 1}}
    )
    md.wait_ready("unjudged", 1)
    md.patch("unjudged", {"spec": {"model": model("2.0.0")}})

    def canary_started() -> bool:
        canary = md.deployment("unjudged-canary")
        return canary is not None and canary["metadata"]["labels"]["sluice.dev/version"] == "2.0.0"

    md.wait(canary_started, "the canary Deployment of 2.0.0")
    md.wait(lambda: status_of(md.get("unjudged")).get("phase") == "RolledBack", "the rollback")
    status = status_of(md.get("unjudged"))
    assert status["stableVersion"] == "1.0.0"
    assert status["lastCheck"]["verdict"] == "Errored"
    assert "127.0.0.1:9" in status["lastCheck"]["metrics"][0]["message"]
    assert [(entry["version"], entry["outcome"]) for entry in status["history"]] == [("2.0.0", "RolledBack")]
    md.wait(lambda: (md.deployment("unjudged-canary") or {}).get("spec", {}).get("replicas") == 0, "canary at 0")
    stable = md.deployment("unjudged-stable")
    assert stable is not None
    assert stable["metadata"]["labels"]["sluice.dev/version"] == "1.0.0"
