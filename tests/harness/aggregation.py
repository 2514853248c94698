"""Extension API servers that run on this host, routed through the kube-apiserver's aggregation layer.

`AggregatedApi.register` makes the aggregator route a group/version to 127.0.0.1:<port>: through an ExternalName
Service (`localhost`) in a namespace of the caller's and an APIService that skips TLS verification (the server is
a process of the harness, on loopback). The API server proxies as `front-proxy-client` (`harness.control_plane`),
so a server that delegates authentication (metrics-server) sees the caller's identity in the request headers.
Used by the stand-in external metrics API (tests/integration/external_metrics.py) and metrics-server on the real
node (`harness.metrics_server`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client
from kubernetes.client import ApiClient


@dataclass(frozen=True)
class AggregatedApi:
    """Group `group`, version `version`, served behind Service `service`."""

    group: str
    version: str
    service: str

    @property
    def path(self) -> str:
        return f"/apis/{self.group}/{self.version}"

    @property
    def api_service(self) -> str:
        return f"{self.version}.{self.group}"

    def register(self, api_client: ApiClient, namespace: str, port: int) -> None:
        """Route the group/version to 127.0.0.1:`port` through the aggregator."""
        service = {"metadata": {"name": self.service}, "spec": {"type": "ExternalName", "externalName": "localhost"}}
        client.CoreV1Api(api_client).create_namespaced_service(namespace, client.V1Service.model_validate(service))
        api_service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": self.api_service},
            "spec": {
                "group": self.group,
                "version": self.version,
                "service": {"namespace": namespace, "name": self.service, "port": port},
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
        client.ApiregistrationV1Api(api_client).create_api_service(client.V1APIService.model_validate(api_service))

    def answers(self, api_client: ApiClient, resource: str) -> bool:
        """Whether a GET of `resource` (a path under the group/version) through the API server succeeds."""
        serialized = api_client.param_serialize("GET", f"{self.path}/{resource}")
        response = api_client.call_api(*serialized)
        response.read()  # type: ignore[no-untyped-call]
        return bool(response.status == 200)

    def unregister(self, api_client: ApiClient, namespace: str) -> None:
        """Remove the APIService and the Service `register` created."""
        client.ApiregistrationV1Api(api_client).delete_api_service(self.api_service)
        client.CoreV1Api(api_client).delete_namespaced_service(self.service, namespace)
