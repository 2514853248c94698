"""The test substrate behaves like a real cluster: controllers, garbage collection, validation, admission, RBAC,
optimistic concurrency, Gateway API CRDs, and a Prometheus that scrapes and answers PromQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness import ControlPlane, Prometheus, unique_name, wait_until

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
# Satisfies the `restricted` Pod Security Standard; kwok never pulls the image.
RESTRICTED_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _pod_spec(*, security_context: dict[str, Any] | None = None) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "registry.invalid/sluice/placeholder:1",
        "securityContext": security_context or RESTRICTED_SECURITY_CONTEXT,
    }
    return {"containers": [container]}


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment.model_validate(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": _pod_spec()},
            },
        }
    )


def _pod(name: str, spec: dict[str, Any]) -> client.V1Pod:
    return client.V1Pod.model_validate({"metadata": {"name": name}, "spec": spec})


def _config_map(name: str, **metadata: Any) -> client.V1ConfigMap:
    return client.V1ConfigMap.model_validate({"metadata": {"name": name, **metadata}})


def _server_message(error: ApiException) -> str:
    """The `message` of the Status object the API server answered with."""
    status: dict[str, Any] = json.loads(error.body or "{}")
    return str(status.get("message", ""))


def _is_not_found(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def _available_replicas(apps: client.AppsV1Api, name: str, namespace: str) -> int:
    status = apps.read_namespaced_deployment_status(name, namespace).status
    return (status.available_replicas if status else None) or 0


def _pod_is_ready(pod: Any) -> bool:
    conditions = {condition.type: condition.status for condition in pod.status.conditions or []}
    return pod.status.phase == "Running" and conditions.get("Ready") == "True"


def test_a_deployment_gets_a_replicaset_and_ready_pods_and_reports_them_available(
    kube_api_client: ApiClient, namespace: str, control_plane: ControlPlane
) -> None:
    apps, core = client.AppsV1Api(kube_api_client), client.CoreV1Api(kube_api_client)
    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=2))

    wait_until(
        lambda: _available_replicas(apps, "web", namespace) == 2,
        timeout=TIMEOUT,
        what="deployment web to report 2 available replicas",
    )

    replica_sets: list[Any] = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    assert [replica_set.metadata.owner_references[0].kind for replica_set in replica_sets] == ["Deployment"]
    pods: list[Any] = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert all(_pod_is_ready(pod) for pod in pods)
    assert {pod.spec.node_name for pod in pods} <= set(control_plane.fake_nodes)
    assert all(pod.status.pod_ip for pod in pods)


def test_deleting_a_deployment_garbage_collects_its_replicasets_and_pods(
    kube_api_client: ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api_client), client.CoreV1Api(kube_api_client)
    apps.create_namespaced_deployment(namespace, _deployment("doomed", replicas=1))
    wait_until(
        lambda: len(core.list_namespaced_pod(namespace, label_selector="app=doomed").items) == 1,
        timeout=TIMEOUT,
        what="the deployment's pod",
    )

    apps.delete_namespaced_deployment("doomed", namespace, propagation_policy="Background")

    wait_until(
        lambda: (
            not apps.list_namespaced_replica_set(namespace, label_selector="app=doomed").items
            and not core.list_namespaced_pod(namespace, label_selector="app=doomed").items
        ),
        timeout=TIMEOUT,
        what="the garbage collector to delete the replicaset and its pods",
    )


def test_deleting_an_owner_object_garbage_collects_its_dependents(kube_api_client: ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api_client)
    owner: Any = core.create_namespaced_config_map(namespace, _config_map("owner"))
    owner_reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(namespace, _config_map("dependent", ownerReferences=[owner_reference]))

    core.delete_namespaced_config_map("owner", namespace)

    wait_until(
        lambda: _is_not_found(lambda: core.read_namespaced_config_map("dependent", namespace)),
        timeout=TIMEOUT,
        what="the dependent config map to be garbage-collected",
    )


WIDGET_GROUP = "substrate.sluice.test"


@pytest.fixture(scope="module")
def widget_crd(kube_api_client: ApiClient) -> Iterator[str]:
    """A namespaced test CRD `Widget` with an OpenAPI schema and a CEL rule; yields its plural."""
    extensions = client.ApiextensionsV1Api(kube_api_client)
    name = f"widgets.{WIDGET_GROUP}"
    spec_schema = {
        "type": "object",
        "required": ["minReplicas", "maxReplicas"],
        "properties": {
            "minReplicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer", "maximum": 10},
            "colour": {"type": "string", "enum": ["red", "blue"]},
        },
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"}
        ],
    }
    crd = client.V1CustomResourceDefinition.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "group": WIDGET_GROUP,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {"spec": spec_schema},
                            }
                        },
                    }
                ],
            },
        }
    )
    extensions.create_custom_resource_definition(crd)

    def established() -> bool:
        status = extensions.read_custom_resource_definition(name).status
        conditions = (status.conditions if status else None) or []
        return any(condition.type == "Established" and condition.status == "True" for condition in conditions)

    wait_until(established, timeout=TIMEOUT, what=f"CRD {name} to be Established")
    yield "widgets"
    extensions.delete_custom_resource_definition(name)


def _create_widget(kube_api_client: ApiClient, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{WIDGET_GROUP}/v1", "kind": "Widget", "metadata": {"name": unique_name("w")}, "spec": spec}
    objects = client.CustomObjectsApi(kube_api_client)
    return cast(dict[str, Any], objects.create_namespaced_custom_object(WIDGET_GROUP, "v1", namespace, "widgets", body))


def test_a_custom_resource_that_satisfies_its_schema_is_accepted(
    kube_api_client: ApiClient, namespace: str, widget_crd: str
) -> None:
    created = _create_widget(kube_api_client, namespace, {"minReplicas": 1, "maxReplicas": 3, "colour": "red"})
    assert created["spec"]["maxReplicas"] == 3


@pytest.mark.parametrize(
    ("spec", "server_message"),
    [
        pytest.param(
            {"minReplicas": -1, "maxReplicas": 3},
            "spec.minReplicas: Invalid value: -1: spec.minReplicas in body should be greater than or equal to 0",
            id="minimum",
        ),
        pytest.param(
            {"minReplicas": 1, "maxReplicas": 3, "colour": "green"},
            'spec.colour: Unsupported value: "green": supported values: "red", "blue"',
            id="enum",
        ),
        pytest.param({"minReplicas": 1}, "spec.maxReplicas: Required value", id="required"),
        pytest.param(
            {"minReplicas": 5, "maxReplicas": 3},
            'spec: Invalid value: "object": minReplicas must not exceed maxReplicas',
            id="cel-rule",
        ),
    ],
)
def test_a_custom_resource_that_breaks_its_schema_or_cel_rule_is_rejected_with_the_servers_message(
    kube_api_client: ApiClient, namespace: str, widget_crd: str, spec: dict[str, Any], server_message: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        _create_widget(kube_api_client, namespace, spec)

    assert rejected.value.status == 422
    assert server_message in _server_message(rejected.value)


def test_a_restricted_namespace_rejects_a_privileged_pod_but_admits_a_compliant_one(
    kube_api_client: ApiClient, restricted_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    privileged = _pod("privileged", _pod_spec(security_context={"privileged": True}))

    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(restricted_namespace, privileged)

    assert rejected.value.status == 403
    message = _server_message(rejected.value)
    assert 'pods "privileged" is forbidden: violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "main" must not set securityContext.privileged=true)' in message
    compliant: Any = core.create_namespaced_pod(restricted_namespace, _pod("compliant", _pod_spec()))
    assert compliant.metadata.name == "compliant"


def test_a_service_account_without_a_role_is_forbidden(
    kube_api_client: ApiClient, namespace: str, control_plane: ControlPlane
) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token_request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(expiration_seconds=600))
    issued: Any = core.create_namespaced_service_account_token("nobody", namespace, token_request)
    token = issued.status.token
    configuration = client.Configuration()
    configuration.host = control_plane.server_url
    configuration.ssl_ca_cert = str(control_plane.certificates.ca_cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}

    with client.ApiClient(configuration) as as_service_account, pytest.raises(ApiException) as forbidden:
        client.CoreV1Api(as_service_account).list_namespaced_pod(namespace)

    assert forbidden.value.status == 403
    assert _server_message(forbidden.value) == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:nobody" cannot list resource "pods" '
        f'in API group "" in the namespace "{namespace}"'
    )


def test_a_write_with_a_stale_resource_version_conflicts(kube_api_client: ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="shared"), data={"writer": "none"})
    )
    first_read = core.read_namespaced_config_map("shared", namespace)
    second_read = core.read_namespaced_config_map("shared", namespace)

    first_read.data = {"writer": "first"}
    core.replace_namespaced_config_map("shared", namespace, first_read)
    second_read.data = {"writer": "second"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("shared", namespace, second_read)

    assert conflict.value.status == 409
    assert "the object has been modified; please apply your changes to the latest version" in _server_message(
        conflict.value
    )
    assert core.read_namespaced_config_map("shared", namespace).data == {"writer": "first"}


def test_the_gateway_api_httproute_crd_is_served(kube_api_client: ApiClient, namespace: str) -> None:
    resources = client.CustomObjectsApi(kube_api_client).get_api_resources("gateway.networking.k8s.io", "v1")
    assert "httproutes" in {resource.name for resource in resources.resources}

    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "model"},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "model-stable", "port": 8080, "weight": 90},
                        {"name": "model-canary", "port": 8080, "weight": 10},
                    ]
                }
            ],
        },
    }
    objects = client.CustomObjectsApi(kube_api_client)
    objects.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", route)
    stored = cast(
        dict[str, Any],
        objects.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", "model"),
    )
    assert [ref["weight"] for ref in stored["spec"]["rules"][0]["backendRefs"]] == [90, 10]


class _MetricsHandler(BaseHTTPRequestHandler):
    body = b'# TYPE sluice_substrate_probe_total counter\nsluice_substrate_probe_total{colour="blue"} 42\n'

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_endpoint() -> Iterator[str]:
    """A tiny HTTP server on loopback serving a Prometheus text exposition; yields host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prometheus_scrapes_a_local_target_and_answers_promql(prometheus: Prometheus, metrics_endpoint: str) -> None:
    prometheus.add_target("probe", metrics_endpoint, labels={"job": "substrate-probe", "team": "sluice"})

    result = prometheus.wait_for_query('sluice_substrate_probe_total{team="sluice"}')

    assert [float(sample["value"][1]) for sample in result] == [42.0]
    assert result[0]["metric"]["colour"] == "blue"
    assert result[0]["metric"]["job"] == "substrate-probe"
    assert prometheus.query_values('sum by (job) (up{job="substrate-probe"})') == [1.0]

    prometheus.remove_target("probe")

    wait_until(
        lambda: all(target["labels"].get("job") != "substrate-probe" for target in prometheus.active_targets()),
        timeout=TIMEOUT,
        what="prometheus to drop the removed target",
    )
